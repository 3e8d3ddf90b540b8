"""notices' event handlers: keep the daily counts and target statuses the detectors read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from notices import repository
from yardstick import events
from yardstick.city import CityProfile
from yardstick.consumer import BatchHandler, EventHandler, NotFound
from yardstick.events import Envelope

ONLINE = {"web", "mobile", "hotline", "face_to_face", "exhibit_hall", "open311"}
COUNTED = {"feedback.received", "feedback.reassigned"}


@dataclass
class Counts:
    """The daily counts some events add, summed per row before anything is written.

    Every touched row is kept, even when its sum is 0 (a move out and back): the rows the
    per-event path would have created exist either way, and `first_data_day` reads them.
    """

    # (subject kind, subject, day) -> (unit, ratings, satisfied ratings)
    ratings: dict[tuple[str, str, date], tuple[str, int, int]] = field(default_factory=dict)
    # (unit, category, day) -> negative items; -> every categorised item
    negatives: dict[tuple[str, str, date], int] = field(default_factory=dict)
    items: dict[tuple[str, str, date], int] = field(default_factory=dict)
    # feedback id -> (unit, category, day, revision): the record with the highest revision stands
    negative_items: dict[str, tuple[str, str, date, int]] = field(default_factory=dict)

    def rating(self, kind: str, subject_id: str, unit_id: str, day: date, satisfied: bool, sign: int = 1) -> None:
        key = (kind, subject_id, day)
        # The row keeps the first unit seen, as the insert that creates it does.
        unit, n, happy = self.ratings.get(key, (unit_id, 0, 0))
        self.ratings[key] = (unit, n + sign, happy + sign * int(satisfied))

    def negative(self, unit_id: str, category_id: str, day: date, sign: int = 1) -> None:
        key = (unit_id, category_id, day)
        self.negatives[key] = self.negatives.get(key, 0) + sign

    def category_item(self, unit_id: str, category_id: str, day: date, sign: int = 1) -> None:
        key = (unit_id, category_id, day)
        self.items[key] = self.items.get(key, 0) + sign

    def negative_item(self, feedback_id: str, unit_id: str, category_id: str, day: date, revision: int) -> None:
        held = self.negative_items.get(feedback_id)
        if held is None or held[3] < revision:  # as the upsert: only a higher revision replaces a record
            self.negative_items[feedback_id] = (unit_id, category_id, day, revision)

    async def write(self, session: AsyncSession) -> None:
        """One multi-row upsert per table, rows in key order (two writers lock rows in the same order)."""
        await repository.add_ratings(session, [(*k, *v) for k, v in sorted(self.ratings.items())])
        await repository.add_negatives(session, [(*k, n) for k, n in sorted(self.negatives.items())])
        await repository.add_category_items(session, [(*k, n) for k, n in sorted(self.items.items())])
        await repository.put_negative_items(session, [(f, *v) for f, v in sorted(self.negative_items.items())])


def count(city: CityProfile, counts: Counts, envelope: Envelope) -> None:
    """Add one feedback event's effect on the daily counts to `counts` (nothing is written yet).

    The one place that says what an item counts for: the per-event handlers and the batch
    handler both write what this collects, so the two paths cannot disagree.
    """
    data = envelope.data
    if isinstance(data, events.FeedbackReceived):
        if data.unit_id not in city.unit_ids:
            raise NotFound(f"unit {data.unit_id!r} is not in the city profile")
        day = _local_day(city, data.occurred_at)
        if data.level is not None:
            satisfied = data.level >= 4
            if data.channel == "window" and data.window_id:
                counts.rating("window", data.window_id, data.unit_id, day, satisfied)
            elif data.channel in ONLINE:
                counts.rating("unit", data.unit_id, data.unit_id, day, satisfied)
        if data.category_id:
            counts.category_item(data.unit_id, data.category_id, day)
        if data.category_id and events.is_negative(data.level, data.has_text):
            counts.negative(data.unit_id, data.category_id, day)
            counts.negative_item(data.feedback_id, data.unit_id, data.category_id, day, 0)
    elif isinstance(data, events.FeedbackReassigned):
        # Counts move from one unit to the other whatever order the moves arrive in (they add up);
        # which unit holds the item itself is decided by the revision.
        day = _local_day(city, data.occurred_at)
        if data.level is not None and data.channel in ONLINE:
            for unit, sign in ((data.from_unit_id, -1), (data.unit_id, 1)):
                counts.rating("unit", unit, unit, day, data.level >= 4, sign)
        if data.category_id and events.is_negative(data.level, True):
            counts.negative(data.from_unit_id, data.category_id, day, -1)
            counts.negative(data.unit_id, data.category_id, day)
            counts.negative_item(data.feedback_id, data.unit_id, data.category_id, day, data.revision)
        if data.category_id:
            counts.category_item(data.from_unit_id, data.category_id, day, -1)
            counts.category_item(data.unit_id, data.category_id, day)


def _local_day(city: CityProfile, moment: datetime) -> date:
    return moment.astimezone(city.timezone).date()


def handlers(city: CityProfile) -> dict[str, EventHandler]:
    """One event at a time (the consumer's fallback when a batch fails, and the tests' way in)."""

    async def feedback(session: AsyncSession, envelope: Envelope) -> None:
        counts = Counts()
        count(city, counts, envelope)
        await counts.write(session)

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

    return {"feedback.received": feedback, "feedback.reassigned": feedback,
            "target.progress": target_progress, "target.status_changed": target_status_changed}


def batch_handler(city: CityProfile) -> BatchHandler:
    """A poll's new events at once (yardstick.consumer.BatchHandler), in the consumer's one transaction.

    Feedback events are summed in memory into one delta per (subject, day) and (unit, category,
    day) and written with one multi-row upsert per table, instead of a statement per event on the
    same few hot rows; the rare target events keep their handlers, in order. An event for a unit
    outside the city profile raises NotFound before anything is written, so the consumer applies
    the poll one event at a time and dead-letters that one alone.
    """
    table = handlers(city)

    async def handle(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        counts = Counts()
        others: list[Envelope] = []
        for envelope in envelopes:
            if envelope.type in COUNTED:
                count(city, counts, envelope)
            elif envelope.type in table:
                others.append(envelope)
        await counts.write(session)
        for envelope in others:
            await table[envelope.type](session, envelope)

    return handle
