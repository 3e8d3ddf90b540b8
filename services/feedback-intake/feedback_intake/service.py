"""feedback-intake's use cases: no HTTP, no SQL."""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from feedback_intake import models, repository, survey_rows
from feedback_intake.classify import Classifier
from feedback_intake.contact import ContactVault
from feedback_intake.deadlines import add_working_days
from feedback_intake.schemas import RatingItem
from feedback_intake.settings import IntakeSettings
from feedback_intake.survey_rows import SurveyRow
from yardstick import events
from yardstick.auth import Principal, ensure_unit
from yardstick.city import UNCATEGORISED, CityProfile
from yardstick.consumer import is_transient
from yardstick.db import as_utc
from yardstick.errors import ApiError
from yardstick.runtime import ServiceRuntime
from yardstick.tasks import stop_task


@dataclass
class RatingOutcome:
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _reject(outcome: RatingOutcome, index: int, code: str, message: str) -> None:
    outcome.rejected.append({"index": index, "error": {"code": code, "message": message}})


def local_year(city: CityProfile, moment: datetime) -> int:
    return moment.astimezone(city.timezone).year


def check_windows(principal: Principal, items: list[dict[str, Any]]) -> None:
    """An item for a window the token does not cover makes the whole request 403."""
    for i, item in enumerate(items):
        window = item.get("window_id") if isinstance(item, dict) else None
        if isinstance(window, str) and not principal.covers_window(window):
            raise ApiError(403, f"ratings[{i}]: this kiosk token does not cover window {window!r}")


_ITEMS = TypeAdapter(list[RatingItem])


def _validate(items: list[dict[str, Any]], outcome: RatingOutcome, *, city: CityProfile,
              settings: IntakeSettings, now: datetime) -> list[tuple[int, RatingItem]]:
    valid: list[tuple[int, RatingItem]] = []
    future = now + timedelta(seconds=settings.future_tolerance_s)
    horizon = now - timedelta(days=settings.horizon_days)
    windows = city.windows_by_id
    try:  # the usual batch, every item well formed: one call into pydantic instead of one an item
        parsed: list[RatingItem | None] = list(_ITEMS.validate_python(items))
    except ValidationError:
        parsed = [None] * len(items)
    for i, raw in enumerate(items):
        item = parsed[i] if parsed[i] is not None else _one_item(raw, i, outcome)
        if item is None:
            continue
        if item.window_id not in windows:
            _reject(outcome, i, "unknown_window", f"window {item.window_id!r} is not in the city profile")
        elif item.rated_at > future:
            _reject(outcome, i, "future", "rated_at is more than 5 minutes ahead of the server's clock")
        elif item.rated_at < horizon:
            _reject(outcome, i, "too_old", f"rated_at is older than the {settings.horizon_days}-day horizon")
        elif unknown := [r for r in item.reasons if r not in city.reason_ids]:
            _reject(outcome, i, "unknown_reason", f"unknown reason tag(s): {', '.join(unknown)}")
        else:
            valid.append((i, item))
    return valid


def _one_item(raw: Any, i: int, outcome: RatingOutcome) -> RatingItem | None:
    """An item of a batch that failed as a whole, validated alone: the item, or None once rejected."""
    if not isinstance(raw, dict):
        _reject(outcome, i, "invalid", "an item must be an object")
        return None
    try:
        return RatingItem.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
        _reject(outcome, i, "invalid", problems)
        return None


async def post_ratings(*, runtime: ServiceRuntime, settings: IntakeSettings, principal: Principal,
                       items: list[dict[str, Any]], now: datetime | None = None) -> RatingOutcome:
    now = now or datetime.now(UTC)
    check_windows(principal, items)
    outcome = RatingOutcome()
    valid = _validate(items, outcome, city=runtime.city, settings=settings, now=now)
    retried = _ids_of_rejected(items, outcome)
    if not valid and not retried:
        return outcome
    device = principal.subject or principal.token_id
    interval = timedelta(seconds=settings.suppress_interval_s)
    async with runtime.transaction() as session:
        await repository.lock_device(session, device)
        # The presses that can suppress these, in UTC as stored (SQLite compares the stored text,
        # which has no offset), read with the ids already stored.
        span = ((min(item.rated_at for _, item in valid).astimezone(UTC) - interval,
                 max(item.rated_at for _, item in valid).astimezone(UTC)) if valid else None)
        stored_ids, pressed = await repository.stored_and_presses(
            session, [item.id for _, item in valid] + list(retried.values()), device, span)
        _count_stored_rejects_as_duplicates(outcome, retried, stored_ids, valid)
        if not valid:
            return outcome
        presses = sorted(as_utc(t) for t in pressed)
        rows: list[dict[str, Any]] = []
        # Looked up once: the profile's properties are pydantic private attributes (slow to reach).
        windows, zone = runtime.city.windows_by_id, runtime.city.timezone
        for _, item in valid:
            if item.id in stored_ids:
                outcome.duplicates += 1
                continue
            stored_ids.add(item.id)
            at = item.rated_at.astimezone(UTC)
            # Suppressed when this kiosk has a stored press in (at - interval, at].
            j = bisect.bisect_right(presses, at)
            suppressed = j > 0 and presses[j - 1] > at - interval
            bisect.insort(presses, at)
            rows.append({"id": item.id, "window_id": item.window_id, "unit_id": windows[item.window_id].unit,
                         "device": device, "level": item.level, "rated_at": at,
                         "year": at.astimezone(zone).year, "reasons": item.reasons,
                         "status": "suppressed" if suppressed else "counted"})
        inserted = await repository.insert_ratings(session, rows)
        envelopes = []
        time = events.ce_time(now)
        for row in rows:
            if row["id"] not in inserted:
                outcome.duplicates += 1  # stored by a concurrent request meanwhile
                continue
            if row["status"] == "suppressed":
                outcome.suppressed += 1
                continue
            outcome.accepted += 1
            envelopes.append(events.prepare(
                events.FeedbackReceived, source=runtime.service, key=row["unit_id"], time=time,
                feedback_id=row["id"], unit_id=row["unit_id"], channel="window", occurred_at=row["rated_at"],
                year=row["year"], level=row["level"], window_id=row["window_id"], reasons=row["reasons"],
                device=device))
        await runtime.emit(session, envelopes)
    return outcome


def _ids_of_rejected(items: list[dict[str, Any]], outcome: RatingOutcome) -> dict[int, str]:
    """The ids the rejected items carry (by index), where an id could have been stored."""
    ids: dict[int, str] = {}
    for rejection in outcome.rejected:
        raw = items[rejection["index"]]
        rating_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(rating_id, str) and 0 < len(rating_id) <= 64:
            ids[rejection["index"]] = rating_id
    return ids


def _count_stored_rejects_as_duplicates(outcome: RatingOutcome, retried: dict[int, str], stored: set[str],
                                        valid: list[tuple[int, RatingItem]]) -> None:
    """api.md: an item whose id was stored before is a duplicate "whatever its body".

    A kiosk retrying a batch after its presses passed the horizon (or after the reason list
    changed) learns they were stored, instead of being told they were refused. An earlier
    item of the same batch counts as stored before.
    """
    first_valid: dict[str, int] = {}
    for index, item in valid:
        first_valid.setdefault(item.id, index)
    kept = []
    for rejection in outcome.rejected:
        index = rejection["index"]
        rating_id = retried.get(index)
        if rating_id is not None and (rating_id in stored or first_valid.get(rating_id, index) < index):
            outcome.duplicates += 1
        else:
            kept.append(rejection)
    outcome.rejected = kept


# feedback ------------------------------------------------------------------------------

STAFF_CHANNELS = frozenset({"hotline", "face_to_face", "exhibit_hall"})
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read out over the phone


def new_tracking_code() -> str:
    """12 characters of a 31-letter alphabet: about 59 bits, not guessable under the rate limits.

    One draw below 31**12 written in base 31: the same uniform choice as 12 draws of a letter, in a
    single call to the system's random source instead of twelve.
    """
    n = secrets.randbelow(_CODE_SPACE)
    letters = []
    for _ in range(12):
        n, digit = divmod(n, len(_CODE_ALPHABET))
        letters.append(_CODE_ALPHABET[digit])
    return "".join(letters)


_CODE_SPACE = len(_CODE_ALPHABET) ** 12


@dataclass(frozen=True)
class Intake:
    """What the feedback use cases need besides the runtime, built once at start-up."""

    runtime: ServiceRuntime
    settings: IntakeSettings
    classifier: Classifier
    vault: ContactVault
    writer: FeedbackWriter
    # Deadlines by arrival day: every post of a day has the same one, and counting the working days
    # through the holiday list cost a fifth of classifying a text. The settings are read once, at
    # start-up, as everywhere else.
    _due: dict[date, date] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def city(self) -> CityProfile:
        return self.runtime.city

    def due_after(self, day: date) -> date:
        """The response deadline for an item that arrived on this local day."""
        due = self._due.get(day)
        if due is None:
            if len(self._due) > 1000:  # a server running for years: keep it small
                self._due.clear()
            settings = self.settings
            due = self._due[day] = add_working_days(day, settings.response_days, settings.holidays,
                                                    settings.workdays)
        return due


@dataclass(frozen=True)
class NewFeedback:
    channel: str
    level: int | None = None
    text: str | None = None
    unit_id: str | None = None
    window_id: str | None = None
    category_id: str | None = None
    district_id: str | None = None
    contact: dict[str, str] = field(default_factory=dict)
    submitted_at: datetime | None = None
    client_id: str | None = None
    platform: str | None = None
    post_id: str | None = None
    url: str | None = None


def _invalid(message: str, field_name: str) -> ApiError:
    return ApiError(422, message, details=[{"loc": ["body", field_name], "message": message}])


def check_moment(settings: IntakeSettings, moment: datetime, now: datetime, field_name: str) -> None:
    """api.md: submitted_at obeys the same bounds as rated_at."""
    if moment > now + timedelta(seconds=settings.future_tolerance_s):
        raise _invalid(f"{field_name} is more than 5 minutes ahead of the server's clock", field_name)
    if moment < now - timedelta(days=settings.horizon_days):
        raise _invalid(f"{field_name} is older than the {settings.horizon_days}-day horizon", field_name)


def _check_references(city: CityProfile, item: NewFeedback) -> str | None:
    """422 for unknown ids; returns the unit the caller named, directly or through a window."""
    unit_id = item.unit_id
    if unit_id is not None and unit_id not in city.unit_ids:
        raise _invalid(f"unknown unit {unit_id!r}", "unit_id")
    if item.window_id is not None:
        if item.window_id not in city.window_ids:
            raise _invalid(f"unknown window {item.window_id!r}", "window_id")
        window_unit = city.windows_by_id[item.window_id].unit
        if unit_id is not None and unit_id != window_unit:
            raise _invalid(f"window {item.window_id!r} belongs to unit {window_unit!r}, not {unit_id!r}", "window_id")
        unit_id = window_unit
    if item.category_id is not None and item.category_id not in city.category_ids:
        raise _invalid(f"unknown category {item.category_id!r}", "category_id")
    if item.district_id is not None and (item.district_id not in city.unit_ids
                                         or city.units_by_id[item.district_id].kind != "district"):
        raise _invalid(f"unknown district {item.district_id!r}", "district_id")
    return unit_id


def _received_event(runtime: ServiceRuntime, row: dict[str, Any], time: str) -> events.Prepared:
    """A stored item's feedback.received, from the row's own (validated) values: no model built."""
    category = row["category_id"] if row["category_id"] != UNCATEGORISED else None
    return events.prepare(
        events.FeedbackReceived, source=runtime.service, key=row["unit_id"], time=time,
        feedback_id=row["id"], unit_id=row["unit_id"], channel=row["channel"],
        occurred_at=as_utc(row["submitted_at"]), year=row["year"], level=row["level"], window_id=row["window_id"],
        category_id=category, district_id=row["district_id"], has_text=bool(row["text"]))


def due_date(intake: Intake, now: datetime) -> date:
    return intake.due_after(now.astimezone(intake.city.timezone).date())


def receipt(row: Any) -> dict[str, Any]:
    return {"id": row.id, "tracking_code": row.tracking_code, "unit_id": row.unit_id,
            "category_id": row.category_id, "status": "received"}


async def create_feedback(intake: Intake, item: NewFeedback, *, now: datetime | None = None
                          ) -> tuple[dict[str, Any], bool]:
    """Store, classify, route and announce one item; (receipt, False) for a retry of a stored one."""
    now = now or datetime.now(UTC)
    city = intake.city
    text_ = item.text if item.text and item.text.strip() else None
    if item.level is None and text_ is None:
        raise _invalid("a level or a text is required", "text")
    named_unit = _check_references(city, item)
    submitted_at = item.submitted_at or now
    try:
        check_moment(intake.settings, submitted_at, now, "submitted_at" if item.channel != "social" else "posted_at")
    except ApiError:
        # A retry of a stored item answers as a retry whatever its age: a client that retries (or a
        # bridge that re-delivers) after the moment passed the horizon learns it was stored, as a
        # kiosk does (_count_stored_rejects_as_duplicates). Looked up only here, off the hot path.
        if item.client_id is None and item.post_id is None:
            raise
        async with intake.runtime.transaction() as session:
            earlier = await _stored_retry(session, item)
        if earlier is None or not _is_retry(earlier, item, text_):
            raise  # not stored, or another item under a used id: the bound is the answer
        return receipt(earlier), False
    if item.category_id is not None:
        category_id, method, confidence = item.category_id, "caller", None
    elif text_ is not None:
        verdict = intake.classifier.classify(text_)
        category_id, method, confidence = verdict.category_id, verdict.method, verdict.confidence
    else:
        category_id, method, confidence = UNCATEGORISED, "none", None
    unit_id = named_unit or (city.categories_by_id[category_id].unit if category_id in city.category_ids else None)
    if unit_id is None and text_ is None:
        raise _invalid("a rating without text needs unit_id or window_id: there is nothing to route it by",
                       "unit_id")
    at = submitted_at.astimezone(UTC)
    contact = intake.vault.seal(item.contact)
    for _ in range(5):
        # Time-ordered, as event ids are (decision 0015): new rows land at the end of the primary key's
        # index, and the id is made from hex digits at a fifth of uuid4's cost.
        row = {"id": events.new_event_id(), "tracking_code": new_tracking_code(), "client_id": item.client_id,
               "channel": item.channel, "unit_id": unit_id, "category_id": category_id,
               "classified_by": method, "confidence": confidence, "level": item.level, "text": text_,
               "window_id": item.window_id, "district_id": item.district_id, "contact": contact,
               "submitted_at": at, "year": local_year(city, at),
               "due": due_date(intake, now) if unit_id is not None else None,
               "platform": item.platform, "post_id": item.post_id, "url": item.url}
        if await intake.writer.insert(row):
            return receipt(_Row(row)), True
        # A unique key was taken, by a committed row: ON CONFLICT waits for the other transaction.
        async with intake.runtime.transaction() as session:
            earlier = await _stored_retry(session, item)
        if earlier is not None:
            if not _is_retry(earlier, item, text_):
                # Not a retry: someone else's id, or a client reusing ids. Never hand out the
                # stored item's receipt (its tracking code opens the unit's response).
                raise ApiError(409, "client_id was used before for a different item; send a new UUID")
            return receipt(earlier), False
        # Otherwise the tracking code collided: draw another.
    raise ApiError(503, "could not allocate a tracking code; retry")


class FeedbackWriter:
    """Stores the feedback items that arrive together in one transaction, with their events.

    Every item announced for a unit takes that unit's outbox lock until its transaction commits
    (decision 0003), so one by one, posts for one unit queued behind each other's commits, and each
    paid a transaction's statements. Here a post that finds a transaction in flight waits for it to
    end and goes into the next one with every other post that arrived meanwhile: no added delay
    when the service is quiet, one commit for many posts when it is busy. An item's receipt is
    answered only after its transaction committed, as before.
    """

    def __init__(self, runtime: ServiceRuntime, *, max_rows: int = 200) -> None:
        self.runtime = runtime
        self.max_rows = max_rows
        self._pending: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def insert(self, row: dict[str, Any]) -> bool:
        """True when the row is stored and its event queued; False when one of its unique keys was taken."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="feedback-writer")
        return await future

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """The service is stopping: let the transaction in flight (and the posts queued behind it)
        finish for up to grace_s, then cancel what is left (those posts answer 503)."""
        flusher = self._flusher
        if flusher is None or flusher.done():
            return
        await asyncio.wait({flusher}, timeout=grace_s)
        await stop_task(flusher)

    async def _flush(self) -> None:
        batch: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        try:
            await self._flush_pending(batch)
        except asyncio.CancelledError:
            for _, future in [*batch, *self._pending]:
                future.cancel()  # stopping: no request waits for a transaction that will not come
            self._pending = []
            raise

    async def _flush_pending(self, batch: list[tuple[dict[str, Any], asyncio.Future[bool]]]) -> None:
        while self._pending:
            batch[:], self._pending = self._pending[:self.max_rows], self._pending[self.max_rows:]
            try:
                inserted = await self._store([row for row, _ in batch])
            except Exception as exc:
                if len(batch) == 1 or is_transient(exc):
                    # The database away or overloaded: every post of the group is told so (503) at
                    # once, rather than each waiting out its own failed attempt in turn.
                    for _, future in batch:
                        _settle(future, exc)
                    continue
                # One bad row must not fail the others: each on its own, as before batching.
                for row, future in batch:
                    try:
                        _settle(future, row["id"] in await self._store([row]))
                    except Exception as single:
                        _settle(future, single)
                continue
            for row, future in batch:
                _settle(future, row["id"] in inserted)

    async def _store(self, rows: list[dict[str, Any]]) -> set[str]:
        async with self.runtime.transaction() as session:
            inserted = await repository.insert_feedback(session, rows)
            time = events.ce_time(datetime.now(UTC))
            await self.runtime.emit(session, [_received_event(self.runtime, row, time) for row in rows
                                              if row["id"] in inserted and row["unit_id"] is not None])
        return inserted


def _settle(future: asyncio.Future[bool], outcome: bool | Exception) -> None:
    if future.done():
        return  # the request was cancelled (its client went away); its row stays stored
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _is_retry(earlier: Any, item: NewFeedback, text_: str | None) -> bool:
    """Whether item, which found `earlier` stored under its client_id or (platform, post_id), repeats it.

    A social post is the same post by (platform, post_id) whatever its text now (edited on the
    platform): the first delivery stands, and its receipt goes only to the bridge that signed for
    that platform. A client_id proves nothing: with another body it is someone else's id or a
    client reusing ids, and the stored item's receipt must not be handed out.
    """
    if item.channel == "social":
        return True
    return bool((earlier.channel, earlier.level, earlier.text) == (item.channel, item.level, text_))


async def _stored_retry(session: AsyncSession, item: NewFeedback) -> Any:
    f = models.feedback.c
    if item.client_id is not None:
        return await repository.feedback_where(session, f.client_id == item.client_id)
    if item.platform is not None and item.post_id is not None:
        return await repository.feedback_where(session, f.platform == item.platform, f.post_id == item.post_id)
    return None


def status_of(row: Any) -> str:
    if row.responded_at is not None:
        return "responded"
    if row.notice_id is not None:
        return "in_rectification"
    return "routed" if row.unit_id is not None else "received"


def is_overdue(intake: Intake, row: Any, now: datetime) -> bool:
    today = now.astimezone(intake.city.timezone).date()
    return row.responded_at is None and row.due is not None and row.due < today


async def by_tracking_code(intake: Intake, code: str) -> Any:
    async with intake.runtime.transaction() as session:
        row = await repository.feedback_where(session, models.feedback.c.tracking_code == code)
    if row is None:
        raise ApiError(404, "no feedback with this tracking code")
    return row


async def follow_up(intake: Intake, code: str, level: int, *, now: datetime | None = None) -> Any:
    now = now or datetime.now(UTC)
    f = models.feedback.c
    async with intake.runtime.transaction() as session:
        row = await repository.feedback_where(session, f.tracking_code == code)
        if row is None:
            raise ApiError(404, "no feedback with this tracking code")
        if row.responded_at is None:
            raise ApiError(409, "a follow-up rating is possible once the unit has responded")
        # Conditional: of two concurrent follow-ups only one finds the slot empty.
        if not await repository.update_feedback(session, row.id, {"follow_up_level": level, "followed_up_at": now},
                                                 f.follow_up_level.is_(None)):
            raise ApiError(409, "this feedback already has its follow-up rating")
        await intake.runtime.emit(session, [events.Envelope.of(
            events.FeedbackFollowUp(feedback_id=row.id, unit_id=row.unit_id, level=level, occurred_at=now,
                                    year=local_year(intake.city, now),
                                    category_id=row.category_id if row.category_id != UNCATEGORISED else None),
            source=intake.runtime.service, key=row.unit_id)])
    return await by_tracking_code(intake, code)


async def _unit_item(session: AsyncSession, unit_id: str | None, feedback_id: str) -> Any:
    f = models.feedback.c
    unit_match = f.unit_id == unit_id if unit_id is not None else f.unit_id.is_(None)
    row = await repository.feedback_where(session, f.id == feedback_id, unit_match)
    if row is None:
        raise ApiError(404, "no such feedback routed to this unit")
    return row


def _check_unit(intake: Intake, unit_id: str) -> None:
    if unit_id not in intake.city.unit_ids:
        raise ApiError(404, f"unknown unit {unit_id!r}")


async def list_for_unit(intake: Intake, principal: Principal, unit_id: str | None, *, status: str | None,
                        category_id: str | None, overdue: bool | None, cursor: str | None, limit: int,
                        now: datetime | None = None) -> tuple[list[Any], str | None]:
    """A unit's feedback (unit None: the commission's queue of items no unit holds yet)."""
    now = now or datetime.now(UTC)
    if unit_id is None:
        if not principal.is_commission():
            raise ApiError(403, "the queue of unrouted feedback is the commission's")
    else:
        _check_unit(intake, unit_id)
        ensure_unit(principal, unit_id)
    today = now.astimezone(intake.city.timezone).date()
    async with intake.runtime.transaction() as session:
        rows = await repository.list_feedback(session, unit_id=unit_id, status=status, category_id=category_id,
                                              overdue=overdue, today=today, after=cursor, limit=limit + 1)
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


async def respond(intake: Intake, principal: Principal, unit_id: str, feedback_id: str, text_: str,
                  *, now: datetime | None = None) -> Any:
    now = now or datetime.now(UTC)
    _check_unit(intake, unit_id)
    if not (principal.role == "coordinator" and principal.unit_id == unit_id):
        raise ApiError(403, f"only the coordinator of {unit_id} responds to its feedback")
    f = models.feedback.c
    async with intake.runtime.transaction() as session:
        row = await _unit_item(session, unit_id, feedback_id)
        if not await repository.update_feedback(session, row.id, {"response_text": text_, "responded_at": now},
                                                f.responded_at.is_(None), f.unit_id == unit_id):
            # A concurrent change won: read it (READ COMMITTED sees it now) to say which.
            current = await repository.feedback_where(session, f.id == row.id)
            if current is not None and current.unit_id != unit_id:
                raise ApiError(409, "the feedback was moved to another unit meanwhile; reload it")
            raise ApiError(409, "this feedback already has a response")
        due = row.due or due_date(intake, now)
        await intake.runtime.emit(session, [events.Envelope.of(
            events.FeedbackResponded(feedback_id=row.id, unit_id=unit_id, responded_at=now, due=due,
                                     overdue=now.astimezone(intake.city.timezone).date() > due),
            source=intake.runtime.service, key=unit_id)])
        return await repository.feedback_where(session, f.id == row.id)


async def reassign(intake: Intake, principal: Principal, unit_id: str | None, feedback_id: str, to_unit: str,
                   reason: str, *, now: datetime | None = None) -> Any:
    """Move an item to another unit (audited); from the commission's queue (unit None) it is routed."""
    now = now or datetime.now(UTC)
    if unit_id is None:
        if not principal.is_commission():
            raise ApiError(403, "the commission routes the queue of unrouted feedback")
    else:
        _check_unit(intake, unit_id)
        ensure_unit(principal, unit_id)
    if to_unit not in intake.city.unit_ids:
        raise _invalid(f"unknown unit {to_unit!r}", "unit_id")
    if to_unit == unit_id:
        raise _invalid("the feedback is already routed to this unit", "unit_id")
    f = models.feedback.c
    async with intake.runtime.transaction() as session:
        row = await _unit_item(session, unit_id, feedback_id)
        if row.responded_at is not None:
            raise ApiError(409, "a responded item stays with the unit that responded")
        held = f.unit_id == unit_id if unit_id is not None else f.unit_id.is_(None)
        # The new unit gets its full response time; a notice of the old unit no longer applies. Not
        # responded, in the update too: a response committed since the read above must keep the item.
        if not await repository.update_feedback(session, row.id, {"unit_id": to_unit, "due": due_date(intake, now),
                                                                  "notice_id": None}, held,
                                                f.responded_at.is_(None)):
            current = await repository.feedback_where(session, f.id == row.id)
            if current is not None and current.responded_at is not None:
                raise ApiError(409, "a responded item stays with the unit that responded")
            raise ApiError(409, "the feedback was moved meanwhile; reload it")
        await repository.add_audit(session, feedback_id=row.id, action="reassign" if unit_id else "route",
                                   actor=principal.token_id, role=principal.role, unit_id=to_unit,
                                   detail={"from": unit_id, "to": to_unit, "reason": reason})
        moved = await repository.feedback_where(session, f.id == row.id)
        if unit_id is None:
            envelope: events.Envelope | events.Prepared = _received_event(intake.runtime, moved._asdict(),
                                                                           events.ce_time(now))
        else:
            category = row.category_id if row.category_id != UNCATEGORISED else None
            revision, received_by = await repository.moves(session, row.id)
            # Keyed by the unit the item's feedback.received named, not the new unit: on the item's
            # partition, every consumer reads the move after the item, and two moves in order.
            envelope = events.Envelope.of(
                events.FeedbackReassigned(feedback_id=row.id, from_unit_id=unit_id, unit_id=to_unit,
                                          channel=row.channel, occurred_at=as_utc(row.submitted_at), year=row.year,
                                          level=row.level, category_id=category, revision=revision),
                source=intake.runtime.service, key=received_by)
        await intake.runtime.emit(session, [envelope])
        return moved


async def read_contact(intake: Intake, principal: Principal, unit_id: str, feedback_id: str) -> dict[str, Any]:
    """Only the coordinator of the unit the item is routed to; every read is audited."""
    _check_unit(intake, unit_id)
    if not (principal.role == "coordinator" and principal.unit_id == unit_id):
        raise ApiError(403, "contact data is shown only to the coordinator of the unit the item is routed to")
    async with intake.runtime.transaction() as session:
        row = await _unit_item(session, unit_id, feedback_id)
        await repository.add_audit(session, feedback_id=row.id, action="contact_read", actor=principal.token_id,
                                   role=principal.role, unit_id=unit_id, detail={})
    contact = intake.vault.open(row.contact) if row.contact else {}
    return {"feedback_id": row.id, "phone": contact.get("phone"), "email": contact.get("email")}


async def audit_trail(intake: Intake, principal: Principal, unit_id: str, feedback_id: str) -> list[dict[str, Any]]:
    _check_unit(intake, unit_id)
    ensure_unit(principal, unit_id)
    async with intake.runtime.transaction() as session:
        row = await _unit_item(session, unit_id, feedback_id)
        rows = await repository.audit_of(session, row.id)
    return [{"action": r.action, "actor": r.actor, "role": r.role, "unit_id": r.unit_id, "detail": r.detail,
             "at": as_utc(r.at)} for r in rows]


# social media --------------------------------------------------------------------------


def verify_social(settings: IntakeSettings, body: bytes, signature: str | None) -> dict[str, Any]:
    """401 unless X-Signature is the HMAC-SHA256 of the raw body with the named platform's secret."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply; still only a 401
        value = None
    platform = value.get("platform") if isinstance(value, dict) else None
    secret = settings.social_secrets.get(platform) if isinstance(platform, str) else None
    if secret is None or not signature or not signature.startswith("sha256="):
        raise ApiError(401, "bad or missing signature")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = signature.removeprefix("sha256=").strip().lower().encode("utf-8", "replace")
    # Bytes, not str: compare_digest refuses non-ASCII str, which a crafted header can carry.
    if not hmac.compare_digest(expected.encode(), given):
        raise ApiError(401, "bad or missing signature")
    assert isinstance(value, dict)
    return value


# survey --------------------------------------------------------------------------------


async def define_survey(intake: Intake, *, year: int, title: str, strata: list[dict[str, Any]]) -> str:
    ids = [s["id"] for s in strata]
    if len(set(ids)) != len(ids):
        raise _invalid("stratum ids must be unique", "strata")
    survey_id = str(uuid.uuid4())
    async with intake.runtime.transaction() as session:
        if not await repository.insert_survey(session, {"id": survey_id, "year": year, "title": title,
                                                        "strata": strata}):
            raise ApiError(409, f"the survey of {year} is already defined (one per year)")
        await intake.runtime.emit(session, [events.Envelope.of(
            events.SurveyDefined(survey_id=survey_id, year=year, title=title,
                                 strata=[events.Stratum(**s) for s in strata]),
            source=intake.runtime.service, key=survey_id)])
    return survey_id


async def get_survey(intake: Intake, survey_id: str) -> dict[str, Any]:
    async with intake.runtime.transaction() as session:
        survey = await repository.get_survey(session, survey_id)
        if survey is None:
            raise ApiError(404, "no such survey")
        counts = await repository.respondents_per_stratum(session, survey_id)
    strata = [{"id": s["id"], "population": s["population"], "respondents": counts.get(s["id"], 0)}
              for s in survey.strata]
    return {"id": survey.id, "year": survey.year, "title": survey.title,
            "respondents": sum(counts.values()), "strata": strata}


@dataclass
class UploadOutcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


async def upload_survey(intake: Intake, survey_id: str, chunks: AsyncIterator[bytes], *, csv_format: bool
                        ) -> UploadOutcome:
    """Parse the body as it arrives and commit every few hundred rows: memory stays flat."""
    async with intake.runtime.transaction() as session:
        survey = await repository.get_survey(session, survey_id)
    if survey is None:
        raise ApiError(404, "no such survey")
    strata = {s["id"] for s in survey.strata}
    units = intake.city.unit_ids
    outcome = UploadOutcome()
    pending: list[SurveyRow] = []
    header: list[str] | None = None
    try:
        async for number, line in survey_rows.numbered_lines(chunks):
            if not line.strip():
                continue
            try:
                if csv_format and header is None:
                    header = survey_rows.parse_csv_header(line)
                    continue
                row = (survey_rows.parse_csv(number, line, header, strata=strata, units=units) if header is not None
                       else survey_rows.parse_ndjson(number, line, strata=strata, units=units))
            except survey_rows.RowError as exc:
                if csv_format and header is None:
                    raise ApiError(422, f"line {number}: {exc}") from None
                outcome.rejected.append({"row": number, "error": {"code": "invalid", "message": str(exc)}})
                continue
            pending.append(row)
            if len(pending) >= intake.settings.survey_chunk_rows:
                await _store_survey_rows(intake, survey, pending, outcome)
                pending = []
    except survey_rows.RowError as exc:
        await _store_survey_rows(intake, survey, pending, outcome)
        raise ApiError(422, f"{exc}; the rows before it were stored "
                            f"({outcome.accepted} accepted, {outcome.duplicates} duplicates)") from None
    await _store_survey_rows(intake, survey, pending, outcome)
    return outcome


async def _store_survey_rows(intake: Intake, survey: Any, rows: list[SurveyRow], outcome: UploadOutcome) -> None:
    if not rows:
        return
    # A respondent repeated inside one chunk: the first occurrence is stored, the rest are duplicates.
    first: dict[str, SurveyRow] = {}
    for row in rows:
        if row.respondent_id in first:
            outcome.duplicates += 1
        else:
            first[row.respondent_id] = row
    async with intake.runtime.transaction() as session:
        inserted = await repository.insert_survey_responses(session, [
            {"survey_id": survey.id, "respondent_id": r.respondent_id, "stratum": r.stratum, "ratings": r.ratings}
            for r in first.values()])
        envelopes = [events.Envelope.of(
            events.SurveyResponse(survey_id=survey.id, year=survey.year, respondent_id=r.respondent_id,
                                  stratum=r.stratum, ratings=r.ratings),
            source=intake.runtime.service, key=survey.id) for r in first.values() if r.respondent_id in inserted]
        await intake.runtime.emit(session, envelopes)
    outcome.accepted += len(inserted)
    outcome.duplicates += len(first) - len(inserted)
