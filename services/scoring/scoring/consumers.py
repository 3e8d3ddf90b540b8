"""scoring's event handlers: keep the aggregates the scorecards are computed from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Mapping, Sequence
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from scoring import repository
from scoring.method import CHANNEL_OF, satisfaction
from yardstick import events
from yardstick.city import CityProfile
from yardstick.consumer import Decoded, EventHandler, NotFound, PreparedBatch, Row, RowDecoder, decode_lean
from yardstick.events import Envelope

CONSUMER = "scoring"
TOPICS = [events.FEEDBACK, events.SURVEY, events.TARGETS, events.NOTICES]
# The feedback events apply_events sums: the batch path reads them as rows (their fields, no model built).
FEEDBACK_TYPES = ("feedback.received", "feedback.follow_up", "feedback.reassigned")
# The consumer's decoders: one message, the relay's messages without validating their envelopes twice
# (decision 0009); a poll, the feedback events as rows and the rest as decode_lean makes them (decision
# 0018), a whole poll in one loop (DECODE_BATCH.poll, decision 0019). Anything else as decode_fast reads it.
DECODE = decode_lean
DECODE_BATCH = RowDecoder(FEEDBACK_TYPES)
# Events a poll, at most (the bus's default is 2,000): a poll pays fixed costs (the aggregates' upsert,
# the commit, the round trips), so a consumer catching up or a replay goes faster in larger ones, and a
# live stream's polls hold what arrived since the last one anyway (decision 0018).
POLL_SIZE = 10_000

RatingKey = tuple[str, str, date, int]
# Each level's satisfaction (method step 1), looked up in the summing loop instead of computed.
SATISFACTION = {level: satisfaction(level) for level in range(1, 6)}


class LocalDays:
    """The local date of moments in a time zone, remembered by the hour: a poll's events fall on a few hours.

    `moment.astimezone(zone).date()` is a third of the summing loop's time; a look-up by the moment's
    clock (its tzinfo, date and hour) is a fifth of that. An hour of a fixed-offset clock is one
    hour of UTC: when the zone's offset at its first and last instants is the same, and so is the
    local date, the whole hour falls on that date (a zone changes its offset at most once in an
    hour, and a day starts once), and the date is kept for it. Any other moment (naive, on a
    clock with daylight saving of its own, in an hour with a transition or a local midnight
    inside) is converted on its own, every time.
    """

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        # (tzinfo, date, hour) of a clock -> the local date of all its instants (summarise reads it inline)
        self.hours: dict[tuple[tzinfo | None, date, int], date] = {}
        self.mixed: set[tuple[tzinfo | None, date, int]] = set()  # hours converted moment by moment

    def __call__(self, moment: datetime) -> date:
        key = (moment.tzinfo, moment.date(), moment.hour)
        day = self.hours.get(key)
        if day is not None:
            return day
        day = moment.astimezone(self.zone).date()
        if key not in self.mixed:
            clock = moment.tzinfo
            if clock is None or clock.utcoffset(None) is None:
                self.mixed.add(key)  # naive, or a zone with transitions of its own
            else:
                # On a fixed-offset clock its own arithmetic is UTC's: the hour's first and last instants.
                start = moment.replace(minute=0, second=0, microsecond=0)
                first = start.astimezone(self.zone)
                last = (start + timedelta(hours=1, microseconds=-1)).astimezone(self.zone)
                if first.utcoffset() == last.utcoffset() and first.date() == last.date() == day:
                    self.hours[key] = day
                else:
                    self.mixed.add(key)
        return day


class Ratings:
    """Rating deltas per (unit, channel, day, year), summed in memory before one upsert.

    A cell is [n, sum_s, sum_s2, events]: the last counts the events that touched it (unsigned), so
    taking some events away again (Summary.subtract) drops a cell exactly when none of those left did.
    """

    def __init__(self) -> None:
        self.cells: dict[RatingKey, list[float]] = {}

    def add(self, unit_id: str, channel: str, day: date, year: int, level: int, sign: int = 1) -> None:
        s = SATISFACTION[level]
        cell = self.cells.setdefault((unit_id, channel, day, year), [0, 0.0, 0.0, 0])
        cell[0] += sign
        cell[1] += sign * s
        cell[2] += sign * s * s
        cell[3] += 1

    def rows(self, *, leaving: Container[int] = ()) -> list[dict[str, Any]]:
        """The cells as rows, those of the years in `leaving` left out."""
        # Sorted: two instances' upserts lock rows in the same order (no deadlock between them).
        return [{"unit_id": u, "channel": c, "day": d, "year": y, "n": int(n), "sum_s": s, "sum_s2": s2}
                for (u, c, d, y), (n, s, s2, _) in sorted(self.cells.items()) if y not in leaving]


class Complaints:
    """Complaint-cell and month deltas summed in memory before one upsert each (the pages' read model).

    A complaint cell is [total, negative, events], as a rating cell counts its events.
    """

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, date, int], list[int]] = {}
        self.months: dict[tuple[int, int, str], int] = {}

    def add(self, *, unit_id: str, category_id: str | None, day: date, year: int, negative: bool,
            sign: int = 1) -> None:
        if category_id is None:
            return  # kiosk presses have no category and never enter complaint cells
        cell = self.cells.setdefault((unit_id, category_id, day - timedelta(days=day.weekday()), year), [0, 0, 0])
        cell[0] += sign
        cell[1] += sign * int(negative)
        cell[2] += 1

    def upserts(self) -> list[repository.Upsert]:
        return [repository.complaint_upsert(
                    {"unit_id": u, "category_id": k, "week": w, "year": y, "total": t, "negative": n}
                    for (u, k, w, y), (t, n, _) in sorted(self.cells.items())),
                repository.month_upsert({"year": y, "month": m, "channel": c, "n": n}
                                        for (y, m, c), n in sorted(self.months.items()))]


def moved(complaints: Complaints, data: Mapping[str, Any], day: date) -> None:
    """Move one reassigned item's complaint counts from its old unit to its new one (`data`: its fields)."""
    # The reassigned event carries no has_text; an item without a level was a text (intake needs one).
    negative = events.is_negative(data.get("level"), True)
    category, year = data.get("category_id"), data["year"]
    complaints.add(unit_id=data["from_unit_id"], category_id=category, day=day, year=year, negative=negative,
                   sign=-1)
    complaints.add(unit_id=data["unit_id"], category_id=category, day=day, year=year, negative=negative)


def handlers(city: CityProfile) -> dict[str, EventHandler]:
    """One handler per event type; each bumps its year (or counts the item late when it is final)."""

    def known(unit_id: str) -> None:
        if unit_id not in city.unit_ids:
            raise NotFound(f"unit {unit_id!r} is not in the city profile")

    async def live(session: AsyncSession, year: int, unit_id: str, kind: str) -> bool:
        if await repository.touch_year(session, year) == "final":
            await repository.add_late(session, year=year, unit_id=unit_id, kind=kind)
            return False
        return True

    async def feedback(session: AsyncSession, envelope: Envelope) -> None:
        # One code path for feedback, one event or a batch: apply_events sums it and upserts once.
        await apply_events(session, [envelope], city, table)

    async def survey_defined(session: AsyncSession, envelope: Envelope) -> None:
        data = envelope.data
        assert isinstance(data, events.SurveyDefined)
        if await repository.touch_year(session, data.year) == "final":
            # The strata are a final year's frozen inputs (its digest covers them): counted late instead,
            # under no unit (a survey names none).
            await repository.add_late(session, year=data.year, unit_id="", kind="survey")
            return
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

    table: dict[str, EventHandler] = {
        "notice.issued": notice_issued,
        "notice.transitioned": notice_transitioned,
        "notice.overdue": notice_overdue,
        "feedback.received": feedback,
        "feedback.reassigned": feedback,
        "feedback.follow_up": feedback,
        "survey.defined": survey_defined,
        "survey.response": survey_response,
        "target.defined": target_fields,
        "target.changed": target_fields,
        "target.progress": target_progress,
    }
    return table


async def apply_events(session: AsyncSession, envelopes: Sequence[Decoded], city: CityProfile,
                       table: dict[str, EventHandler], *, strict: bool = True) -> None:
    """Apply new events, in order, in the caller's transaction: what one event's handler does, for many.

    Ratings and the pages' counts of feedback.received and follow-ups are summed in memory and
    written with one upsert per (unit, channel, day), (unit, category, week) and month; each year
    is bumped once. The feedback events are read by their fields, as rows (the batch path's
    decoder makes them, decision 0018) or from their models, one code path; every other event
    goes through its handler. Strict (the live consumer), an event naming an unknown unit raises
    NotFound, and the consumer applies the batch again in halves down to that event to dead-letter
    it alone; a replay skips it instead, as the live consumer's dead-letter topic took it.
    """
    await summarise(envelopes, city, table, strict=strict).write(session, table, strict=strict)


class Summary:
    """What a run of events does to the read model, summed without I/O (`summarise`); `write` applies it.

    Rating cells and the late count of each (year, unit) are kept apart per year: whether a year is
    final is the database's to say, when writing (a final year's ratings count as late instead).
    """

    def __init__(self) -> None:
        self.ratings = Ratings()
        self.complaints = Complaints()
        # year -> unit -> rating events (what counts as late if the year turns out final), years in order.
        self.late: dict[int, dict[str, int]] = {}
        self.others: list[Decoded] = []  # events for their handlers, in order

    def subtract(self, other: Summary) -> None:
        """Take away what `other`, a summary of some of the same events, holds: as if they had not been summed.

        Exact: the sums are of quarters and sixteenths (satisfaction), which floats hold exactly, and a
        cell, month or late count goes when no event is left in it.
        """
        pairs: list[tuple[dict[Any, list[Any]], dict[Any, list[Any]]]] = [
            (self.ratings.cells, other.ratings.cells), (self.complaints.cells, other.complaints.cells)]
        for mine, theirs in pairs:
            for key, values in theirs.items():
                cell = mine[key]
                for i, v in enumerate(values):
                    cell[i] -= v
                if not cell[-1]:
                    del mine[key]
        months = self.complaints.months
        for month, n in other.complaints.months.items():
            months[month] -= n
            if not months[month]:
                del months[month]
        for year, units in other.late.items():
            mine_by_unit = self.late[year]
            for unit_id, n in units.items():
                mine_by_unit[unit_id] -= n
                if not mine_by_unit[unit_id]:
                    del mine_by_unit[unit_id]
            if not mine_by_unit:
                del self.late[year]
        gone = {e.id for e in other.others}
        self.others = [e for e in self.others if e.id not in gone]

    async def write(self, session: AsyncSession, table: Mapping[str, EventHandler], *, strict: bool = True) -> None:
        final = set()
        # Years in order: two instances touch the years' rows in the same order (no deadlock between them).
        for year, units in sorted(self.late.items()):
            if await repository.touch_year(session, year, ratings_only=True) == "final":
                final.add(year)
                for unit_id, n in units.items():
                    await repository.add_late(session, year=year, unit_id=unit_id, kind="ratings", n=n)
        for e in self.others:
            envelope = _envelope(e)
            if strict:
                await table[e.type](session, envelope)
                continue
            try:
                await table[e.type](session, envelope)
            except NotFound:
                continue
        # One statement for the aggregates (one round trip on PostgreSQL), in the order two instances share;
        # a final year's ratings were counted late instead.
        await repository.add_all(session, [*repository.rating_upserts(self.ratings.rows(leaving=final)),
                                           *self.complaints.upserts()])


def summarise(envelopes: Sequence[Decoded], city: CityProfile, handled: Container[str], *,
              strict: bool = True) -> Summary:
    """The events' Summary: the feedback events summed, the others of a type in `handled` kept for their
    handlers. No I/O: the consumer runs it in its decoding thread (decision 0018). Strict, an event naming a
    unit the city does not have raises NotFound; else it is skipped."""
    summary = Summary()
    tz = city.timezone
    units = city.unit_ids
    cells, weeks, months = summary.ratings.cells, summary.complaints.cells, summary.complaints.months
    late, others = summary.late, summary.others
    mondays: dict[date, date] = {}  # each day's week (a poll's events fall on a few days)
    local_day = LocalDays(tz)
    hours = local_day.hours
    for e in envelopes:
        kind = e.type
        if kind not in FEEDBACK_TYPES:
            if kind in handled:
                others.append(e)
            continue
        # A row's fields, or the model's (a validated model's __dict__ holds every field, defaults included).
        data = e.data if isinstance(e, Row) else e.data.__dict__
        unit_id = data["unit_id"]
        if unit_id not in units:
            if strict:
                raise NotFound(f"unit {unit_id!r} is not in the city profile")
            continue
        moment = data["occurred_at"]
        day = hours.get((moment.tzinfo, moment.date(), moment.hour)) or local_day(moment)
        level = data.get("level")
        year = data["year"]
        if kind == "feedback.reassigned":
            moved(summary.complaints, data, day)
            channel = CHANNEL_OF.get(data["channel"])
            if level is None or channel is None:
                continue
            summary.ratings.add(data["from_unit_id"], channel, day, year, level, sign=-1)
            summary.ratings.add(unit_id, channel, day, year, level)
        else:
            if kind == "feedback.received":
                # The pages count every item, whatever its year's status; kiosk presses have no category.
                sent = data["channel"]
                month = (year, day.month, sent)
                months[month] = months.get(month, 0) + 1
                category = data.get("category_id")
                if category is not None:
                    monday = mondays.get(day)
                    if monday is None:
                        monday = mondays[day] = day - timedelta(days=day.weekday())
                    key = (unit_id, category, monday, year)
                    counts = weeks.get(key)
                    if counts is None:
                        counts = weeks[key] = [0, 0, 0]
                    counts[0] += 1
                    counts[1] += events.is_negative(level, data.get("has_text", False))
                    counts[2] += 1
                channel = CHANNEL_OF.get(sent)
            else:
                channel = "online"  # a follow-up
            if level is None or channel is None:
                continue  # complaint analysis only (method step 1)
            s = SATISFACTION[level]
            cell = cells.get((unit_id, channel, day, year))
            if cell is None:
                cells[(unit_id, channel, day, year)] = [1, s, s * s, 1]
            else:
                cell[0] += 1
                cell[1] += s
                cell[2] += s * s
                cell[3] += 1
        by_unit = late.get(year)
        if by_unit is None:
            by_unit = late[year] = {}
        by_unit[unit_id] = by_unit.get(unit_id, 0) + 1
    return summary


def _envelope(event: Decoded) -> Envelope:
    """An event the handlers take: the batch decoder gives rows for the feedback types alone."""
    if isinstance(event, Row):
        raise TypeError(f"a {event.type} row reached its handler; rows are for {', '.join(FEEDBACK_TYPES)}")
    return event


def batch_handler(city: CityProfile, table: dict[str, EventHandler]) -> Callable[
        [AsyncSession, Sequence[Decoded]], Awaitable[None]]:
    """The live consumer's batch handler: envelopes and the feedback events' rows (DECODE_BATCH)."""

    async def handle(session: AsyncSession, envelopes: Sequence[Decoded]) -> None:
        await apply_events(session, envelopes, city, table)

    return handle


def preparer(city: CityProfile, table: dict[str, EventHandler]) -> Callable[
        [Sequence[Decoded]], PreparedBatch[Decoded]]:
    """The live consumer's `prepare`: a poll's Summary made in the decoding thread, written by the batch path.

    What it returns does what batch_handler does with the new ones among the same events: the
    events applied before (a redelivery) are summed again on their own, a few, and taken away.
    NotFound raised here the consumer raises when every event is new (else its batch handler runs).
    """

    def prepare(envelopes: Sequence[Decoded]) -> PreparedBatch[Decoded]:
        summary = summarise(envelopes, city, table)

        async def write(session: AsyncSession, fresh: Sequence[Decoded], stale: Sequence[Decoded]) -> None:
            if len(fresh) + len(stale) != len(envelopes):
                raise ValueError("the new events and those applied before are not the events prepared")
            if stale:
                # Applied before, so in the city then: not strict, a unit gone since is skipped as it was summed.
                summary.subtract(summarise(stale, city, table, strict=False))
            await summary.write(session, table)

        return write

    return prepare


async def apply_batch(session: AsyncSession, envelopes: Sequence[Decoded], city: CityProfile,
                      table: dict[str, EventHandler], *, consumer: str = CONSUMER) -> int:
    """Apply many events in one transaction (a replay); returns how many were new.

    Event ids are recorded as the live consumer records them (one statement, which also says
    which ones are new), so a replay is idempotent too.
    """
    unique: dict[str, Decoded] = {}
    for e in envelopes:
        unique.setdefault(e.id, e)  # the first of each id, in order
    new = await repository.record_new_events(session, consumer, list(unique))
    fresh = [e for e in unique.values() if e.id in new]
    await apply_events(session, fresh, city, table, strict=False)
    return len(fresh)
