"""The report's statistics, the SVG charts and the language formatting, as pure functions."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest
from scipy.stats import norm

from scoring.pages import i18n, opinion, svg


def test_a_share_that_rose_a_lot_is_a_priority_and_a_steady_one_is_not() -> None:
    # Last year 40 of 400 negative items were about doctors (10%); this year 120 of 400 (30%).
    rows = {r.category_id: r for r in opinion.category_shares(
        {"seeing-a-doctor": 120, "parking": 140, "noise": 140},
        {"seeing-a-doctor": 40, "parking": 180, "noise": 180})}
    doctor = rows["seeing-a-doctor"]
    assert doctor.share == pytest.approx(0.3) and doctor.previous_share == pytest.approx(0.1)
    assert doctor.change == pytest.approx(0.2)
    assert doctor.priority and doctor.q_value is not None and doctor.q_value < 1e-6
    assert not rows["parking"].priority and not rows["noise"].priority  # their shares fell


def test_the_rise_p_value_is_the_pooled_z_test() -> None:
    x1, n1, x0, n0 = 30, 200, 20, 200
    pooled = 50 / 400
    z = (0.15 - 0.10) / math.sqrt(pooled * (1 - pooled) * (2 / 200))
    assert opinion.rise_p_value(x1, n1, x0, n0) == pytest.approx(norm.sf(z))
    assert opinion.rise_p_value(1, 0, 1, 10) is None
    assert opinion.rise_p_value(5, 5, 7, 7) == 1.0  # the only category both years


def test_benjamini_hochberg_matches_the_textbook_example() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.02, 0.04, 0.04
    assert opinion.benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_a_category_new_this_year_has_no_previous_share() -> None:
    (row,) = opinion.category_shares({"noise": 3}, {})
    assert row.share == 1.0 and row.previous_share is None and row.p_value is None and not row.priority


def test_an_effect_compares_the_same_span_before_issue_and_after_verification() -> None:
    issued, verified = date(2026, 3, 2), date(2026, 4, 13)  # Mondays, six weeks apart
    weeks = [(issued - timedelta(weeks=i), 10) for i in range(1, 7)]  # 10 a week before
    weeks += [(verified + timedelta(weeks=i), 2) for i in range(1, 7)]  # 2 a week after
    result = opinion.effect(weeks, issued=issued, verified=verified, today=date(2026, 12, 1))
    assert result == opinion.Effect(weeks=6, before=10.0, after=2.0, held=True)
    fresh = opinion.effect(weeks, issued=issued, verified=verified, today=verified + timedelta(days=3))
    assert fresh.after is None and fresh.held is None


def test_weekly_means_fold_days_into_weeks_per_channel() -> None:
    monday = date(2026, 6, 1)
    weeks, means = opinion.weekly_means([(monday, "window", 2, 1.5), (monday + timedelta(days=3), "window", 2, 0.5),
                                         (monday + timedelta(days=7), "online", 1, 0.25)])
    assert weeks == [monday, monday + timedelta(weeks=1)]
    assert means == {"online": [None, 0.25], "window": [0.5, None]}


def test_charts_are_labelled_svg_that_parses() -> None:
    chart = svg.line_chart("Weekly <satisfaction>", ["a", "b", "c"],
                           [svg.Series("window", [0.5, None, 1.0]), svg.Series("online", [0.2, 0.4, 0.6])],
                           y_min=0, y_max=1)
    root = ET.fromstring(str(chart))
    assert root.get("role") == "img" and root.get("aria-label") == "Weekly <satisfaction>"
    assert "&lt;satisfaction&gt;" in str(chart)  # titles are escaped
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f".//{ns}polyline")) == 1 and len(root.findall(f".//{ns}circle")) == 2
    band = svg.target_chart("beds", start=date(2026, 1, 1), end=date(2026, 12, 31), baseline=0, target=100,
                            points=[(date(2026, 6, 1), 40.0)], band=(date(2026, 6, 1), 80.0, 60.0, 95.0))
    assert ET.fromstring(str(band)).find(f".//{ns}polygon") is not None


def test_dates_and_numbers_follow_the_language() -> None:
    assert i18n.day(date(2026, 3, 7), "zh") == "2026年3月7日"
    assert i18n.day(date(2026, 3, 7), "en") == "7 Mar 2026"
    assert i18n.number(1234567, "en") == "1,234,567" and i18n.number(1234567, "zh") == "123.5万"
    assert i18n.number(12.3456, "en", 2) == "12.35" and i18n.percent(0.1234, "zh") == "12.3%"
    assert i18n.pick("fr") == "zh" and i18n.pick("en") == "en"
    assert all(len(pair) == 2 and all(pair) for pair in i18n.WORDS.values())
