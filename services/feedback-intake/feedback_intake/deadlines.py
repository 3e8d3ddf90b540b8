"""Working-day deadlines for a unit's response to feedback."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, timedelta


def add_working_days(start: date, days: int, holidays: Collection[date] = (),
                     workdays: Collection[date] = ()) -> date:
    """The day on which `days` working days have passed, counting from the day after `start`.

    Weekdays work unless listed as holidays; listed make-up days work even on a weekend.
    """
    day = start
    left = days
    while left > 0:
        day += timedelta(days=1)
        if day in workdays or (day.weekday() < 5 and day not in holidays):
            left -= 1
    return day
