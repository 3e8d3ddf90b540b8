"""notices' event handlers: keep the daily counts and target statuses the detectors read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from notices import detectors, repository
from yardstick import events
from yardstick.city import CityProfile
from yardstick.consumer import BatchHandler, EventHandler, NotFound
from yardstick.events import Envelope

ONLINE = {"web", "mobile", "hotline", "face_to_face", "exhibit_hall", "open311"}
HANDLED = ("feedback.received", "feedback.reassigned", "feedback.follow_up", "target.progress",
           "target.status_changed", "target.changed")


@dataclass
class Changes:
    """What some events change in the tables the detectors read, merged per row before anything is written.

    Counts add up, so a row's changes are summed; every touched row is kept, even when its sum
    is 0 (a move out and back): the rows the events would have created one by one exist either
    way, and `first_data_day` reads them. A target's status and a report's status are replaced,
    so the last one read stands, as it would event by event.
    """

    # (subject kind, subject, day) -> (unit, ratings, satisfied ratings)
    ratings: dict[tuple[str, str, date], tuple[str, int, int]] = field(default_factory=dict)
    # (unit, category, day) -> negative items; -> every categorised item
    negatives: dict[tuple[str, str, date], int] = field(default_factory=dict)
    items: dict[tuple[str, str, date], int] = field(default_factory=dict)
    # feedback id -> (unit, category, day, revision): the record with the highest revision stands
    negative_items: dict[str, tuple[str, str, date, int]] = field(default_factory=dict)
    # target -> (unit, status, as of); (target, report date) -> status
    target_states: dict[str, tuple[str, str, date | None]] = field(default_factory=dict)
    target_reports: dict[tuple[str, date], str] = field(default_factory=dict)

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
        await repository.put_target_reports(session, [(*k, s) for k, s in sorted(self.target_reports.items())])
        await repository.put_target_states(session, [(t, *v) for t, v in sorted(self.target_states.items())])


def collecting(city: CityProfile) -> Callable[[Changes, Envelope], None]:
    """What one event changes, added to `changes` (nothing is written yet).

    The one place that says what an event counts for: the per-event handlers and the batch
    handler both write what this collects, so the two paths cannot disagree. The city's units
    and time zone are read once here: the profile builds its set of units anew on every access.
    """
    units = city.unit_ids
    zone = city.timezone

    def collect(changes: Changes, envelope: Envelope) -> None:
        data = envelope.data
        if isinstance(data, events.FeedbackReceived):
            if data.unit_id not in units:
                raise NotFound(f"unit {data.unit_id!r} is not in the city profile")
            day = data.occurred_at.astimezone(zone).date()
            if data.level is not None:
                satisfied = data.level >= 4
                if data.channel == "window" and data.window_id:
                    changes.rating("window", data.window_id, data.unit_id, day, satisfied)
                elif data.channel in ONLINE:
                    changes.rating("unit", data.unit_id, data.unit_id, day, satisfied)
            if data.category_id:
                changes.category_item(data.unit_id, data.category_id, day)
            if data.category_id and events.is_negative(data.level, data.has_text):
                changes.negative(data.unit_id, data.category_id, day)
                changes.negative_item(data.feedback_id, data.unit_id, data.category_id, day, 0)
        elif isinstance(data, events.FeedbackReassigned):
            # Counts move from one unit to the other whatever order the moves arrive in (they add up);
            # which unit holds the item itself is decided by the revision.
            day = data.occurred_at.astimezone(zone).date()
            if data.level is not None and data.channel in ONLINE:
                for unit, sign in ((data.from_unit_id, -1), (data.unit_id, 1)):
                    changes.rating("unit", unit, unit, day, data.level >= 4, sign)
            if data.category_id and events.is_negative(data.level, True):
                changes.negative(data.from_unit_id, data.category_id, day, -1)
                changes.negative(data.unit_id, data.category_id, day)
                changes.negative_item(data.feedback_id, data.unit_id, data.category_id, day, data.revision)
            if data.category_id:
                changes.category_item(data.from_unit_id, data.category_id, day, -1)
                changes.category_item(data.unit_id, data.category_id, day)
        elif isinstance(data, events.FeedbackFollowUp):
            # A follow-up rating is an online rating of the unit (scoring-method.md's online channel),
            # not a new item: it enters the unit's ratings only, never the complaint cells.
            if data.unit_id not in units:
                raise NotFound(f"unit {data.unit_id!r} is not in the city profile")
            day = data.occurred_at.astimezone(zone).date()
            changes.rating("unit", data.unit_id, data.unit_id, day, data.level >= 4)
        elif isinstance(data, events.TargetProgress):
            # A correction replaces the status of that report date; the latest status follows the tracker.
            changes.target_reports[(data.target_id, data.date)] = data.status
            changes.target_states[data.target_id] = (data.unit_id, data.status, data.date)
        elif isinstance(data, events.TargetStatusChanged):
            changes.target_states[data.target_id] = (data.unit_id, data.status, data.as_of)
        elif isinstance(data, events.TargetChanged) and data.withdrawn:
            # The tracker stops judging a withdrawn target (and refuses its reports), so its last status
            # would stand for ever: it is retired here instead, and no detector fires on it again.
            changes.target_states[data.target_id] = (data.unit_id, detectors.WITHDRAWN, None)

    return collect


def handlers(city: CityProfile) -> dict[str, EventHandler]:
    """One event at a time (the consumer's fallback when a batch fails, and the tests' way in)."""
    collect = collecting(city)

    async def handle(session: AsyncSession, envelope: Envelope) -> None:
        changes = Changes()
        collect(changes, envelope)
        await changes.write(session)

    return dict.fromkeys(HANDLED, handle)


def batch_handler(city: CityProfile) -> BatchHandler:
    """A poll's new events at once (yardstick.consumer.BatchHandler), in the consumer's one transaction.

    The events' changes are merged in memory into one per row and written with one multi-row
    upsert per table, instead of a statement per event on the same few hot rows. An event for a
    unit outside the city profile raises NotFound before anything is written, so the consumer
    applies the poll again in halves, down to that event, and dead-letters it alone.
    """
    collect = collecting(city)

    async def handle(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        changes = Changes()
        for envelope in envelopes:
            collect(changes, envelope)
        await changes.write(session)

    return handle
