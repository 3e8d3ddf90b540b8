"""Working days on a per-year calendar of public holidays and make-up working days."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from pydantic import BaseModel, Field


class HolidayYear(BaseModel):
    holidays: list[date] = Field(default_factory=list)
    workdays: list[date] = Field(default_factory=list, description="make-up working days on weekends")


def _days(*spans: tuple[str, str]) -> list[date]:
    out: list[date] = []
    for first, last in spans:
        day, end = date.fromisoformat(first), date.fromisoformat(last)
        while day <= end:
            out.append(day)
            day += timedelta(days=1)
    return out


# Illustrative default (China's 2026 schedule as announced by the State Council's General
# Office); the calendar is configurable and the commission's own is the source of truth.
DEFAULT_CALENDAR: dict[int, HolidayYear] = {
    2026: HolidayYear(
        holidays=_days(("2026-01-01", "2026-01-03"), ("2026-02-15", "2026-02-23"), ("2026-04-04", "2026-04-06"),
                       ("2026-05-01", "2026-05-05"), ("2026-06-19", "2026-06-21"), ("2026-09-25", "2026-09-27"),
                       ("2026-10-01", "2026-10-07")),
        workdays=[date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20),
                  date(2026, 10, 10)]),
}


class WorkCalendar:
    """Weekdays are working days unless listed as holidays; listed make-up days work even on weekends."""

    def __init__(self, years: Mapping[int, HolidayYear]) -> None:
        self.holidays = {d for y in years.values() for d in y.holidays}
        self.workdays = {d for y in years.values() for d in y.workdays}

    def is_working(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def add(self, start: date, working_days: int) -> date:
        """The day on which `working_days` working days have passed, counting from the day after `start`."""
        day = start
        left = working_days
        while left > 0:
            day += timedelta(days=1)
            if self.is_working(day):
                left -= 1
        return day

    def next_working_day(self, day: date) -> date:
        return self.add(day, 1)
