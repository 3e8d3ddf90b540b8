"""A unit's response deadline: `response_days` working days after the day an item arrived (api.md)."""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from feedback_intake.service import Intake
from feedback_intake.settings import IntakeSettings


def intake_with(settings: IntakeSettings) -> Intake:
    # Deadlines need only the settings; the rest of the use cases' dependencies play no part here.
    unused = cast(Any, None)
    return Intake(runtime=unused, settings=settings, classifier=unused, vault=unused, writer=unused)


def test_deadlines_skip_weekends_and_holidays_and_count_make_up_days_for_each_arrival_day() -> None:
    intake = intake_with(IntakeSettings(auth_secret="s" * 40, response_days=3,
                                        holidays=[date(2026, 10, 1), date(2026, 10, 2)],
                                        workdays=[date(2026, 10, 10)]))
    assert date(2026, 9, 30).weekday() == 2  # a Wednesday
    # Thu 1 and Fri 2 are holidays, the weekend follows: Mon 5, Tue 6, Wed 7.
    assert intake.due_after(date(2026, 9, 30)) == date(2026, 10, 7)
    # From Fri 9: Sat 10 is a make-up working day, then Mon 12 and Tue 13.
    assert intake.due_after(date(2026, 10, 9)) == date(2026, 10, 13)
    # Each day keeps its own deadline, asked again in any order.
    assert intake.due_after(date(2026, 9, 30)) == date(2026, 10, 7)
    assert intake.due_after(date(2026, 10, 9)) == date(2026, 10, 13)


def test_every_service_with_other_settings_counts_its_own_deadlines() -> None:
    short = intake_with(IntakeSettings(auth_secret="s" * 40, response_days=1))
    long = intake_with(IntakeSettings(auth_secret="s" * 40, response_days=15))
    assert short.due_after(date(2026, 11, 27)) == date(2026, 11, 30)  # a Friday: due on Monday
    assert long.due_after(date(2026, 11, 27)) == date(2026, 12, 18)
