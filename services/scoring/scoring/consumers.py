"""scoring's event handlers: keep the aggregates the scorecards are computed from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from scoring import repository
from scoring.method import CHANNEL_OF, satisfaction
from yardstick import events
from yardstick.city import CityProfile
from yardstick.consumer import EventHandler, NotFound
from yardstick.events import Envelope

CONSUMER = "scoring"
TOPICS = [events.FEEDBACK, events.SURVEY, events.TARGETS, events.NOTICES]

RatingKey = tuple[str, str, date, int]


class Ratings:
    """Rating deltas per (unit, channel, day, year), summed in memory before one upsert."""

    def __init__(self) -> None:
        self.cells: dict[RatingKey, list[float]] = {}

    def add(self, unit_id: str, channel: str, day: date, year: int, level: int, sign: int = 1) -> None:
        s = satisfaction(level)
        cell = self.cells.setdefault((unit_id, channel, day, year), [0, 0.0, 0.0])
        cell[0] += sign
        cell[1] += sign * s
        cell[2] += sign * s * s

    def rows(self) -> list[dict[str, Any]]:
        return [{"unit_id": u, "channel": c, "day": d, "year": y, "n": int(n), "sum_s": s, "sum_s2": s2}
                for (u, c, d, y), (n, s, s2) in self.cells.items()]


class Complaints:
    """Complaint-cell and month deltas summed in memory before one upsert each (the pages' read model)."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, date, int], list[int]] = {}
        self.months: dict[tuple[int, int, str], int] = {}

    def add(self, *, unit_id: str, category_id: str | None, day: date, year: int, negative: bool,
            sign: int = 1) -> None:
        if category_id is None:
            return  # kiosk presses have no category and never enter complaint cells
        cell = self.cells.setdefault((unit_id, category_id, day - timedelta(days=day.weekday()), year), [0, 0])
        cell[0] += sign
        cell[1] += sign * int(negative)

    def count(self, *, year: int, day: date, channel: str) -> None:
        key = (year, day.month, channel)
        self.months[key] = self.months.get(key, 0) + 1

    async def write(self, session: AsyncSession) -> None:
        await repository.add_complaints(session, [
            {"unit_id": u, "category_id": k, "week": w, "year": y, "total": t, "negative": n}
            for (u, k, w, y), (t, n) in self.cells.items()])
        await repository.add_months(session, [{"year": y, "month": m, "channel": c, "n": n}
                                              for (y, m, c), n in self.months.items()])


def received(complaints: Complaints, data: events.FeedbackReceived, day: date) -> None:
    """Count one feedback.received for the pages (every item, whatever its year's status)."""
    complaints.count(year=data.year, day=day, channel=data.channel)
    complaints.add(unit_id=data.unit_id, category_id=data.category_id, day=day, year=data.year,
                   negative=events.is_negative(data.level, data.has_text))


def handlers(city: CityProfile) -> dict[str, EventHandler]:
    """One handler per event type; each bumps its year (or counts the item late when it is final)."""

    def local_day(moment: datetime) -> date:
        return moment.astimezone(city.timezone).date()

    def known(unit_id: str) -> None:
        if unit_id not in city.unit_ids:
            raise NotFound(f"unit {unit_id!r} is not in the city profile")

    async def live(session: AsyncSession, year: int, unit_id: str, kind: str) -> bool:
        if await repository.touch_year(session, year) == "final":
            await repository.add_late(session, year=year, unit_id=unit_id, kind=kind)
            return False
        return True

    async def feedback_received(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.FeedbackReceived)
        known(data.unit_id)
        complaints = Complaints()
        received(complaints, data, local_day(data.occurred_at))
        await complaints.write(session)
        channel = CHANNEL_OF.get(data.channel)
        if data.level is None or channel is None:
            return  # complaint analysis only (method step 1)
        if await live(session, data.year, data.unit_id, "ratings"):
            await repository.add_rating(session, unit_id=data.unit_id, channel=channel,
                                        day=local_day(data.occurred_at), year=data.year,
                                        s=satisfaction(data.level))

    async def feedback_reassigned(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.FeedbackReassigned)
        known(data.unit_id)
        moved = Complaints()
        # The reassigned event carries no has_text; an item without a level was a text (intake needs one).
        negative = events.is_negative(data.level, True)
        day_of_item = local_day(data.occurred_at)
        moved.add(unit_id=data.from_unit_id, category_id=data.category_id, day=day_of_item, year=data.year,
                  negative=negative, sign=-1)
        moved.add(unit_id=data.unit_id, category_id=data.category_id, day=day_of_item, year=data.year,
                  negative=negative)
        await moved.write(session)
        channel = CHANNEL_OF.get(data.channel)
        if data.level is None or channel is None:
            return
        if not await live(session, data.year, data.unit_id, "ratings"):
            return
        ratings = Ratings()
        day = local_day(data.occurred_at)
        ratings.add(data.from_unit_id, channel, day, data.year, data.level, sign=-1)
        ratings.add(data.unit_id, channel, day, data.year, data.level)
        await repository.add_ratings(session, ratings.rows())

    async def feedback_follow_up(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.FeedbackFollowUp)
        known(data.unit_id)
        if await live(session, data.year, data.unit_id, "ratings"):
            await repository.add_rating(session, unit_id=data.unit_id, channel="online",
                                        day=local_day(data.occurred_at), year=data.year,
                                        s=satisfaction(data.level))

    async def survey_defined(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.SurveyDefined)
        await repository.touch_year(session, data.year)
        await repository.define_survey(session, survey_id=data.survey_id, year=data.year,
                                       strata={s.id: s.population for s in data.strata})

    async def survey_response(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.SurveyResponse)
        unknown = sorted(u for u in data.ratings if u not in city.unit_ids)
        if unknown:
            raise NotFound(f"units {', '.join(unknown)} are not in the city profile")
        if await repository.touch_year(session, data.year) == "final":
            for unit_id, level in data.ratings.items():
                if level is not None:
                    await repository.add_late(session, year=data.year, unit_id=unit_id, kind="survey")
            return
        if not await repository.count_respondent(session, survey_id=data.survey_id, stratum=data.stratum):
            raise NotFound(f"survey {data.survey_id!r} has no stratum {data.stratum!r}")
        cells = []
        for unit_id, level in sorted(data.ratings.items()):
            if level is None:
                continue  # "unknown" is not counted (method step 1)
            s = satisfaction(level)
            cells.append({"year": data.year, "unit_id": unit_id, "stratum": data.stratum, "n": 1,
                          "sum_s": s, "sum_s2": s * s})
        await repository.add_survey_cells(session, cells)

    async def target_fields(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.TargetFields)
        known(data.unit_id)
        await repository.put_target_title(session, target_id=data.target_id, title=data.title,
                                          public_commitment=data.public_commitment)
        if await live(session, data.year, data.unit_id, "targets"):
            await repository.put_target(session, {
                "target_id": data.target_id, "unit_id": data.unit_id, "year": data.year, "code": data.code,
                "kind": data.kind, "direction": data.direction, "baseline": data.baseline,
                "target": data.target, "weight": data.weight, "approved": data.approved,
                "withdrawn": data.withdrawn})

    async def target_progress(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.TargetProgress)
        known(data.unit_id)
        projection = data.projection
        await repository.put_target_point(session, {
            "target_id": data.target_id, "date": data.date, "unit_id": data.unit_id, "year": data.year,
            "value": data.value, "status": data.status,
            "projection": projection.value if projection else None,
            "low": projection.low if projection else None, "high": projection.high if projection else None})
        if await live(session, data.year, data.unit_id, "targets"):
            # A correction carries the corrected value for its date: it overwrites.
            await repository.put_target_value(session, target_id=data.target_id, day=data.date,
                                              year=data.year, value=data.value)

    async def notice_issued(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.NoticeIssued)
        known(data.unit_id)
        await repository.put_notice(session, {
            "notice_id": data.notice_id, "unit_id": data.unit_id, "year": data.year, "rule": data.rule,
            "subject": data.subject, "severity": data.severity, "status": "issued", "issued_at": data.issued_at,
            "verified_at": None, "evidence": data.evidence, "linked_notice_id": data.linked_notice_id,
            "overdue": [], "history": [{"status": "issued", "at": data.issued_at.isoformat()}], "changes": 1})

    async def notice_transitioned(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.NoticeTransitioned)
        notice = await repository.notice_view(session, data.notice_id)
        if notice is None:
            raise NotFound(f"notice {data.notice_id!r} was never issued")
        # The plan, commitment, next deadline and verification figures ride along for the public register.
        shown = data.model_dump(mode="json", include={"actions", "commitment", "deadline", "figures"},
                                exclude_none=True)
        history = [*notice["history"], {"status": data.status, "previous": data.previous, "at": data.at.isoformat(),
                                        **shown}]
        # A reopened notice leaves the deadlines it missed behind; a new step starts a new clock.
        await repository.update_notice(
            session, data.notice_id, status=data.status, history=history, changes=notice["changes"] + 1,
            verified_at=data.at if data.status == "verified" else None, overdue=[])

    async def notice_overdue(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.NoticeOverdue)
        notice = await repository.notice_view(session, data.notice_id)
        if notice is None:
            raise NotFound(f"notice {data.notice_id!r} was never issued")
        overdue = [o for o in notice["overdue"] if o["step"] != data.step]
        overdue.append({"step": data.step, "deadline": data.deadline.isoformat()})
        await repository.update_notice(session, data.notice_id, overdue=overdue, changes=notice["changes"] + 1)

    return {
        "notice.issued": notice_issued,
        "notice.transitioned": notice_transitioned,
        "notice.overdue": notice_overdue,
        "feedback.received": feedback_received,
        "feedback.reassigned": feedback_reassigned,
        "feedback.follow_up": feedback_follow_up,
        "survey.defined": survey_defined,
        "survey.response": survey_response,
        "target.defined": target_fields,
        "target.changed": target_fields,
        "target.progress": target_progress,
    }


async def apply_batch(session: AsyncSession, envelopes: Sequence[Envelope], city: CityProfile,
                      table: dict[str, EventHandler], *, consumer: str = CONSUMER) -> int:
    """Apply many events in one transaction (replays and the benchmark); returns how many were new.

    Ratings are summed in memory and written with one upsert per (unit, channel, day);
    every other event goes through its ordinary handler. Event ids are recorded as the
    live consumer records them, so a replay is idempotent too.
    """
    seen = await repository.seen_events(session, consumer, [e.id for e in envelopes])
    fresh: list[Envelope] = []
    ids: set[str] = set()
    for e in envelopes:
        if e.id not in seen and e.id not in ids:
            ids.add(e.id)
            fresh.append(e)
    statuses: dict[int, str] = {}
    ratings = Ratings()
    complaints = Complaints()
    tz = city.timezone
    for e in fresh:
        data = e.data
        if isinstance(data, events.FeedbackReceived) and data.unit_id in city.unit_ids:
            received(complaints, data, data.occurred_at.astimezone(tz).date())
        if isinstance(data, events.FeedbackReceived | events.FeedbackFollowUp):
            level = data.level
            channel = "online" if isinstance(data, events.FeedbackFollowUp) else CHANNEL_OF.get(data.channel)
            if data.unit_id not in city.unit_ids or level is None or channel is None:
                continue
            if data.year not in statuses:
                statuses[data.year] = await repository.touch_year(session, data.year)
            if statuses[data.year] == "final":
                await repository.add_late(session, year=data.year, unit_id=data.unit_id, kind="ratings")
                continue
            ratings.add(data.unit_id, channel, data.occurred_at.astimezone(tz).date(), data.year, level)
        elif e.type in table:
            try:
                await table[e.type](session, e)
            except NotFound:
                continue  # the live consumer dead-lettered it: it changed nothing there either
    await repository.add_ratings(session, ratings.rows())
    await complaints.write(session)
    await repository.record_events(session, consumer, [e.id for e in fresh])
    return len(fresh)
