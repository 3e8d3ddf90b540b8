"""scoring's event handlers: keep the aggregates the scorecards are computed from."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession
from yardstick import events
from yardstick.city import CityProfile
from yardstick.consumer import EventHandler, NotFound
from yardstick.events import Envelope

from scoring import repository
from scoring.method import CHANNEL_OF, satisfaction


def handlers(city: CityProfile) -> dict[str, EventHandler]:
    def local_day(env_time: datetime) -> date:
        return env_time.astimezone(city.timezone).date()

    async def feedback_received(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.FeedbackReceived)
        if data.unit_id not in city.unit_ids:
            raise NotFound(f"unit {data.unit_id!r} is not in the city profile")
        channel = CHANNEL_OF.get(data.channel)
        if data.level is None or channel is None:
            return  # complaint analysis only (method step 1)
        await repository.add_rating(session, unit_id=data.unit_id, channel=channel,
                                    day=local_day(data.occurred_at), year=data.year,
                                    s=satisfaction(data.level))

    async def feedback_reassigned(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.FeedbackReassigned)
        channel = CHANNEL_OF.get(data.channel)
        if data.level is None or channel is None:
            return
        day = local_day(data.occurred_at)
        s = satisfaction(data.level)
        await repository.add_rating(session, unit_id=data.from_unit_id, channel=channel, day=day,
                                    year=data.year, s=s, sign=-1)
        await repository.add_rating(session, unit_id=data.unit_id, channel=channel, day=day,
                                    year=data.year, s=s)

    async def feedback_follow_up(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.FeedbackFollowUp)
        await repository.add_rating(session, unit_id=data.unit_id, channel="online",
                                    day=local_day(data.occurred_at), year=data.year,
                                    s=satisfaction(data.level))

    return {
        "feedback.received": feedback_received,
        "feedback.reassigned": feedback_reassigned,
        "feedback.follow_up": feedback_follow_up,
    }
