"""notices' event handlers: keep the daily counts and target statuses the detectors read."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from notices import repository
from yardstick import events
from yardstick.city import CityProfile
from yardstick.consumer import EventHandler, NotFound
from yardstick.events import Envelope

ONLINE = {"web", "mobile", "hotline", "face_to_face", "exhibit_hall", "open311"}


def handlers(city: CityProfile) -> dict[str, EventHandler]:
    def local_day(moment: datetime) -> date:
        return moment.astimezone(city.timezone).date()

    async def feedback_received(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.FeedbackReceived)
        if data.unit_id not in city.unit_ids:
            raise NotFound(f"unit {data.unit_id!r} is not in the city profile")
        day = local_day(data.occurred_at)
        if data.level is not None:
            satisfied = data.level >= 4
            if data.channel == "window" and data.window_id:
                await repository.add_rating(session, kind="window", subject_id=data.window_id,
                                            unit_id=data.unit_id, day=day, satisfied=satisfied)
            elif data.channel in ONLINE:
                await repository.add_rating(session, kind="unit", subject_id=data.unit_id,
                                            unit_id=data.unit_id, day=day, satisfied=satisfied)
        if data.category_id:
            await repository.add_category_item(session, unit_id=data.unit_id, category_id=data.category_id,
                                               day=day)
        if data.category_id and events.is_negative(data.level, data.has_text):
            await repository.add_negative(session, unit_id=data.unit_id, category_id=data.category_id,
                                          day=day)
            await repository.add_negative_item(session, feedback_id=data.feedback_id, unit_id=data.unit_id,
                                               category_id=data.category_id, day=day)

    async def feedback_reassigned(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.FeedbackReassigned)
        day = local_day(data.occurred_at)
        if data.level is not None and data.channel in ONLINE:
            for unit, sign in ((data.from_unit_id, -1), (data.unit_id, 1)):
                await repository.add_rating(session, kind="unit", subject_id=unit, unit_id=unit, day=day,
                                            satisfied=data.level >= 4, sign=sign)
        if data.category_id and events.is_negative(data.level, True):
            await repository.add_negative(session, unit_id=data.from_unit_id, category_id=data.category_id,
                                          day=day, sign=-1)
            await repository.add_negative(session, unit_id=data.unit_id, category_id=data.category_id, day=day)
            await repository.add_negative_item(session, feedback_id=data.feedback_id, unit_id=data.unit_id,
                                               category_id=data.category_id, day=day, revision=data.revision)
        if data.category_id:
            await repository.add_category_item(session, unit_id=data.from_unit_id, category_id=data.category_id,
                                               day=day, sign=-1)
            await repository.add_category_item(session, unit_id=data.unit_id, category_id=data.category_id,
                                               day=day)

    async def target_progress(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.TargetProgress)
        # A correction replaces the status of that report date; the latest status follows the tracker.
        await repository.set_target_report(session, target_id=data.target_id, day=data.date, status=data.status)
        await repository.set_target_status(session, target_id=data.target_id, unit_id=data.unit_id,
                                           status=data.status, as_of=data.date)

    async def target_status_changed(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.TargetStatusChanged)
        await repository.set_target_status(session, target_id=data.target_id, unit_id=data.unit_id,
                                           status=data.status, as_of=data.as_of)

    return {"feedback.received": feedback_received, "feedback.reassigned": feedback_reassigned,
            "target.progress": target_progress, "target.status_changed": target_status_changed}
