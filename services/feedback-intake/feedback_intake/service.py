"""feedback-intake's use cases: no HTTP, no SQL."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from yardstick import events
from yardstick.auth import Principal
from yardstick.city import CityProfile
from yardstick.errors import ApiError
from yardstick.runtime import ServiceRuntime

from feedback_intake import repository
from feedback_intake.schemas import RatingItem
from feedback_intake.settings import IntakeSettings


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


def _validate(items: list[dict[str, Any]], outcome: RatingOutcome, *, city: CityProfile,
              settings: IntakeSettings, now: datetime) -> list[tuple[int, RatingItem]]:
    valid: list[tuple[int, RatingItem]] = []
    future = now + timedelta(seconds=settings.future_tolerance_s)
    horizon = now - timedelta(days=settings.horizon_days)
    windows = city.windows_by_id
    for i, raw in enumerate(items):
        if not isinstance(raw, dict):
            _reject(outcome, i, "invalid", "an item must be an object")
            continue
        try:
            item = RatingItem.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
            _reject(outcome, i, "invalid", problems)
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
        stored_ids = await repository.existing_rating_ids(
            session, [item.id for _, item in valid] + list(retried.values()))
        _count_stored_rejects_as_duplicates(outcome, retried, stored_ids, valid)
        if not valid:
            return outcome
        # In UTC, as stored: SQLite compares the stored text, which has no offset.
        earliest = min(item.rated_at for _, item in valid).astimezone(UTC) - interval
        latest = max(item.rated_at for _, item in valid).astimezone(UTC)
        presses = sorted(_aware(t) for t in await repository.device_presses(session, device, earliest, latest))
        rows: list[dict[str, Any]] = []
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
            window = runtime.city.windows_by_id[item.window_id]
            rows.append({"id": item.id, "window_id": item.window_id, "unit_id": window.unit,
                         "device": device, "level": item.level, "rated_at": at,
                         "year": local_year(runtime.city, at), "reasons": item.reasons,
                         "status": "suppressed" if suppressed else "counted"})
        inserted = await repository.insert_ratings(session, rows)
        envelopes = []
        for row in rows:
            if row["id"] not in inserted:
                outcome.duplicates += 1  # stored by a concurrent request meanwhile
                continue
            if row["status"] == "suppressed":
                outcome.suppressed += 1
                continue
            outcome.accepted += 1
            envelopes.append(events.Envelope.of(
                events.FeedbackReceived(
                    feedback_id=row["id"], unit_id=row["unit_id"], channel="window",
                    occurred_at=row["rated_at"], year=row["year"], level=row["level"],
                    window_id=row["window_id"], reasons=row["reasons"], device=device),
                source=runtime.service, key=row["unit_id"]))
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


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
