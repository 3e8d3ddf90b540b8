"""Reporting deadlines and stale limits per cadence: pure date arithmetic, no I/O."""

from __future__ import annotations

from datetime import date, timedelta

# How long after a period a report for it is still on time (the city's calendar days).
DAILY_GRACE_DAYS = 1
WEEKLY_GRACE_DAYS = 1
MONTHLY_GRACE_DAYS = 5


def deadline(cadence: str, on: date) -> date:
    """The last day (city time) on which a report for `on` is on time.

    daily: the next day; weekly: the Monday after the ISO week of `on`; monthly: the 5th of
    the next month. Later reports are accepted and flagged late.
    """
    if cadence == "weekly":
        sunday = on + timedelta(days=6 - on.weekday())
        return sunday + timedelta(days=WEEKLY_GRACE_DAYS)
    if cadence == "monthly":
        first_next = date(on.year + 1, 1, 1) if on.month == 12 else date(on.year, on.month + 1, 1)
        return first_next + timedelta(days=MONTHLY_GRACE_DAYS - 1)
    return on + timedelta(days=DAILY_GRACE_DAYS)


def is_late(cadence: str, on: date, received: date) -> bool:
    return received > deadline(cadence, on)


def stale_days(cadence: str, limits: dict[str, int]) -> int:
    """No report within this many days of the as-of date makes a numeric target no_data."""
    return limits.get(cadence, limits.get("daily", 10))


def first_report_overdue(*, kind: str, cadence: str, year: int, due: date | None, approved_on: date | None,
                         today: date, stale_days: int) -> bool:
    """Whether a target with no report at all has been silent long enough to be marked no_data.

    The clock starts on the first day the target could be reported on: Jan 1 of its year, or the
    day it was approved if later (a proposal's is not running: nothing is due before approval).
    A numeric target is then judged as if it had a report on that day: more than its stale limit
    later, as of today or Dec 31 for a past year. A milestone, never stale, once the report for its
    due date (or its approval, if later) is late. A target approved after its year ended owed
    nothing in it. (docs/decisions/targets-tracker.md)
    """
    if approved_on is None:
        return False
    first, last = date(year, 1, 1), date(year, 12, 31)
    start = max(first, approved_on)
    if start > last:
        return False
    if kind == "milestone":
        return today > deadline(cadence, max(due or last, start))
    return (min(today, last) - start).days > stale_days
