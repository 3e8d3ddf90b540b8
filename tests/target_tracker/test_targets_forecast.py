"""Attainment, trajectory, projection, status and deadlines against hand-computed cases."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest

from target_tracker import cadence, forecast
from target_tracker.forecast import HoltParams, Projection, Spec, Thresholds

INCREASE = Spec(kind="numeric", direction="increase", baseline=10, target=20, year=2025)
DECREASE = Spec(kind="numeric", direction="decrease", baseline=100, target=80, year=2025)
MILESTONE = Spec(kind="milestone", direction="increase", baseline=0, target=1, year=2025, due=date(2025, 6, 30))


@pytest.mark.parametrize(("spec", "value", "r"), [
    (INCREASE, 15, 0.5), (INCREASE, 12.5, 0.25), (INCREASE, 20, 1.0),
    (INCREASE, 25, 1.0),  # clamped at 1
    (INCREASE, 5, 0.0),  # clamped at 0
    (DECREASE, 90, 0.5), (DECREASE, 95, 0.25), (DECREASE, 70, 1.0), (DECREASE, 110, 0.0),
    (MILESTONE, 1, 1.0), (MILESTONE, 0, 0.0),
    (INCREASE, None, 0.0),  # no report yet
])
def test_attainment(spec: Spec, value: float | None, r: float) -> None:
    assert forecast.attainment(spec, value) == pytest.approx(r)


def test_attainment_unclamped_for_projections() -> None:
    assert forecast.attainment(INCREASE, 25, clamp=False) == pytest.approx(1.5)
    assert forecast.attainment(DECREASE, 110, clamp=False) == pytest.approx(-0.5)


def test_linear_trajectory() -> None:
    # 2025 has 364 days between Jan 1 and Dec 31: a target of 364 over baseline 0 gains 1 a day.
    spec = Spec(kind="numeric", direction="increase", baseline=0, target=364, year=2025)
    assert forecast.expected_value(spec, date(2025, 1, 1)) == 0
    assert forecast.expected_value(spec, date(2025, 7, 2)) == pytest.approx(182)
    assert forecast.expected_value(spec, date(2025, 12, 31)) == pytest.approx(364)
    assert forecast.expected_value(spec, date(2026, 3, 1)) == pytest.approx(364)


def test_trajectory_with_monthly_milestones() -> None:
    spec = Spec(kind="numeric", direction="increase", baseline=0, target=120, year=2025,
                milestones=tuple(10.0 * m for m in range(1, 13)))
    assert forecast.expected_value(spec, date(2025, 1, 31)) == pytest.approx(10)
    assert forecast.expected_value(spec, date(2025, 1, 16)) == pytest.approx(5)  # 15 of 30 days
    assert forecast.expected_value(spec, date(2025, 2, 14)) == pytest.approx(15)  # 14 of 28 days, 10 -> 20
    assert forecast.expected_value(spec, date(2025, 12, 31)) == pytest.approx(120)
    # A milestone path that front-loads the year: half the target by the end of March.
    front = Spec(kind="numeric", direction="increase", baseline=0, target=100, year=2025,
                 milestones=(20, 35, 50, 55, 60, 65, 70, 75, 80, 85, 90, 100))
    assert forecast.expected_value(front, date(2025, 3, 31)) == pytest.approx(50)


def test_least_squares_exact_line_has_no_spread() -> None:
    points = [(date(2025, 1, 1) + timedelta(days=d), 10 + 0.5 * d) for d in range(5)]
    p = forecast.least_squares(points, date(2025, 12, 31))
    assert p.value == pytest.approx(10 + 0.5 * 364)
    assert p.low == pytest.approx(p.value) and p.high == pytest.approx(p.value)


def test_least_squares_interval_by_hand() -> None:
    # Points (0, 1), (1, 3), (2, 2): slope 0.5, intercept 1.5, residuals -0.5, 1, -0.5 (SSR 1.5, s = 1.2247).
    start = date(2025, 12, 1)
    points = [(start, 1.0), (start + timedelta(days=1), 3.0), (start + timedelta(days=2), 2.0)]
    p = forecast.least_squares(points, start + timedelta(days=4))
    assert p.value == pytest.approx(1.5 + 0.5 * 4)
    t_975_1 = 12.706204736174707
    half = t_975_1 * math.sqrt(1.5) * math.sqrt(1 + 1 / 3 + (4 - 1) ** 2 / 2)
    assert p.low == pytest.approx(3.5 - half) and p.high == pytest.approx(3.5 + half)


def test_least_squares_uses_the_last_14_reports() -> None:
    # An old flat stretch followed by 14 reports climbing 1 a day: only the climb counts.
    start = date(2025, 1, 1)
    points = [(start + timedelta(days=d), 0.0) for d in range(20)]
    points += [(start + timedelta(days=20 + d), float(d)) for d in range(14)]
    p = forecast.project(INCREASE, points)
    assert p.method == "least_squares"
    assert p.value == pytest.approx(13 + (date(2025, 12, 31) - points[-1][0]).days)


def test_a_single_report_is_paced_from_the_baseline() -> None:
    spec = Spec(kind="numeric", direction="increase", baseline=0, target=364, year=2025)
    p = forecast.project(spec, [(date(2025, 1, 11), 5.0)])  # 5 in 10 days -> 0.5 a day
    assert p.value == pytest.approx(0.5 * 364)


def test_holt_with_known_parameters() -> None:
    series = [2.0 * k for k in range(40)]
    # alpha = beta = phi = 1: the level follows the data and the trend is the last step (2): no errors.
    value, low, high = forecast.holt(series, HoltParams(1.0, 1.0, 1.0), steps=10)
    assert value == pytest.approx(78 + 20) and low == pytest.approx(value) and high == pytest.approx(value)
    # Damped by 0.5: the trend adds 2 * (0.5 + 0.25 + 0.125) over three steps.
    value, _, _ = forecast.holt(series, HoltParams(1.0, 1.0, 0.5), steps=3)
    assert value == pytest.approx(78 + 2 * 0.875)


def test_holt_takes_over_from_30_reports() -> None:
    rng = random.Random(7)
    start = date(2025, 1, 1)
    points = [(start + timedelta(days=d), 50 + 0.2 * d + rng.gauss(0, 0.3)) for d in range(60)]
    params = forecast.fit_holt([v for _, v in points])
    assert 0 <= params.alpha <= 1 and 0 <= params.beta <= 1 and 0 < params.phi <= 1
    p = forecast.project(INCREASE, points, params)
    assert p.method == "holt"
    assert p.low is not None and p.high is not None and p.value is not None
    assert p.low < p.value < p.high
    # The damped trend keeps rising from the last level but less than the straight line would.
    straight = 50 + 0.2 * 364
    assert points[-1][1] - 2 < p.value < straight + 2
    assert forecast.project(INCREASE, points[:29], params).method == "least_squares"


@pytest.mark.parametrize(("alpha", "beta", "phi", "h"), [
    (0.3, 0.1, 0.9, 1), (0.3, 0.1, 0.9, 2), (0.8, 0.2, 0.98, 40), (0.5, 0.5, 1.0, 12), (0.2, 0.0, 0.0, 5),
    (0.9, 0.3, 0.995, 335)])
def test_holt_variance_factor_matches_the_sum(alpha: float, beta: float, phi: float, h: int) -> None:
    # The ETS(A,Ad,N) sum term by term (Hyndman & Athanasopoulos 8.7), against the closed form.
    total, phi_j = 1.0, 0.0
    for j in range(1, h):
        phi_j += phi ** j
        total += (alpha + alpha * beta * phi_j) ** 2
    assert forecast.holt_variance_factor(alpha, beta, phi, h) == pytest.approx(total, rel=1e-9)


@pytest.mark.parametrize(("n", "params"), [(5, HoltParams(0.3, 0.1, 0.9)), (30, HoltParams(0.8, 0.05, 0.98)),
                                           (200, HoltParams(0.15, 0.4, 0.85))])
def test_holt_matches_the_recursion_step_by_step(n: int, params: HoltParams) -> None:
    rng = random.Random(n)
    values = [50 + 0.1 * k + rng.gauss(0, 1) for k in range(n)]
    series = values[-forecast.HOLT_WINDOW:]
    a, b, phi = params.alpha, params.beta, params.phi
    level, head = series[0], series[1:min(len(series), 11)]
    trend = (head[-1] - series[0]) / len(head)
    errors = []
    for y in series[1:]:
        expected = level + phi * trend
        errors.append(y - expected)
        new_level = a * y + (1 - a) * expected
        trend = b * (new_level - level) + (1 - b) * phi * trend
        level = new_level
    h = 12
    value = level + sum(phi ** j for j in range(1, h + 1)) * trend
    half = forecast.Z95 * math.sqrt(sum(e * e for e in errors) / len(errors)
                                    * forecast.holt_variance_factor(a, b, phi, h))
    assert forecast.holt(values, params, steps=h) == pytest.approx((value, value - half, value + half), rel=1e-9)


def test_holt_fit_is_as_good_as_statsmodels_default() -> None:
    import warnings

    import numpy as np
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    rng = np.random.default_rng(11)
    for k in range(6):
        values = list(50 + np.cumsum(rng.normal(0.1 * k, 0.4, 40 + 15 * k)) + rng.normal(0, 0.3 * k, 40 + 15 * k))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ExponentialSmoothing(values, trend="add", damped_trend=True, initialization_method="heuristic")
            default = model.fit(use_brute=False)
            ours = forecast.fit_holt(values)
            refit = model.fit(smoothing_level=ours.alpha, smoothing_trend=ours.beta, damping_trend=ours.phi,
                              optimized=False)
        assert refit.sse <= default.sse * 1.001


TH = Thresholds(on_track=1.0, at_risk=0.9)


def _status(spec: Spec, latest: tuple[date, float] | None, projected: float | None, today: date) -> str:
    projection = Projection(projected, projected, projected, "least_squares")
    return forecast.status(spec, latest=latest, projection=projection, today=today, stale_days=10, thresholds=TH)


def test_status_thresholds() -> None:
    today = date(2025, 6, 1)
    latest = (date(2025, 5, 31), 14.0)
    assert _status(INCREASE, latest, 20.0, today) == "on_track"  # projected r = 1.0
    assert _status(INCREASE, latest, 19.0, today) == "at_risk"  # 0.9
    assert _status(INCREASE, latest, 18.9, today) == "off_track"  # 0.89
    assert _status(DECREASE, latest, 78.0, today) == "on_track"  # 1.1
    assert _status(DECREASE, latest, 82.0, today) == "at_risk"  # 0.9
    assert _status(DECREASE, latest, 85.0, today) == "off_track"  # 0.75
    strict = Thresholds(on_track=1.1, at_risk=1.0)
    projection = Projection(20.0, 20.0, 20.0, "least_squares")
    assert forecast.status(INCREASE, latest=latest, projection=projection, today=today, stale_days=10,
                           thresholds=strict) == "at_risk"


def test_status_goes_stale() -> None:
    last = date(2025, 6, 1)
    assert _status(INCREASE, (last, 20.0), 25.0, last + timedelta(days=10)) == "on_track"
    assert _status(INCREASE, (last, 20.0), 25.0, last + timedelta(days=11)) == "no_data"
    assert _status(INCREASE, None, None, last) == "no_data"
    # A past year is judged on Dec 31, not today.
    assert _status(INCREASE, (date(2025, 12, 25), 20.0), 25.0, date(2026, 11, 1)) == "on_track"
    assert _status(INCREASE, (date(2025, 12, 20), 20.0), 25.0, date(2026, 11, 1)) == "no_data"


def test_milestone_status() -> None:
    before, after = date(2025, 6, 30), date(2025, 7, 1)
    assert _status(MILESTONE, None, None, before) == "on_track"
    assert _status(MILESTONE, (date(2025, 3, 1), 0.0), None, before) == "on_track"
    assert _status(MILESTONE, (date(2025, 6, 20), 1.0), None, after) == "on_track"
    assert _status(MILESTONE, (date(2025, 6, 20), 0.0), None, after) == "off_track"
    # Not reported by its due date: not done (api.md), not no_data (a milestone is never stale).
    assert _status(MILESTONE, None, None, after) == "off_track"
    # Due Dec 31 (the default): past due once that day is over, though a past year is judged as of Dec 31.
    year_end = Spec(kind="milestone", direction="increase", baseline=0, target=1, year=2025)
    assert _status(year_end, (date(2025, 5, 1), 0.0), None, date(2025, 12, 31)) == "on_track"
    assert _status(year_end, (date(2025, 5, 1), 0.0), None, date(2026, 1, 1)) == "off_track"


def test_first_report_clock() -> None:
    """When a target with no report at all is marked no_data (and notices hears of it)."""

    def overdue(today: date, *, kind: str = "numeric", cad: str = "daily", due: date | None = None,
                approved_on: date | None = date(2024, 12, 1), stale_days: int = 10) -> bool:
        return cadence.first_report_overdue(kind=kind, cadence=cad, year=2025, due=due, approved_on=approved_on,
                                            today=today, stale_days=stale_days)

    assert not overdue(date(2025, 1, 11)) and overdue(date(2025, 1, 12))
    # Approved in the year: the clock starts on the day of approval.
    assert not overdue(date(2025, 3, 20), approved_on=date(2025, 3, 10))
    assert overdue(date(2025, 3, 21), approved_on=date(2025, 3, 10))
    assert not overdue(date(2025, 12, 1), approved_on=None)  # a proposal owes nothing
    # A past year is judged on Dec 31; a target approved after its year ended owed nothing in it.
    assert not overdue(date(2026, 3, 1), approved_on=date(2025, 12, 25))
    assert not overdue(date(2026, 3, 1), approved_on=date(2026, 1, 5))
    # A milestone: once its due date's report is late (monthly: through the 5th of the next month).
    june = date(2025, 6, 30)
    assert not overdue(date(2025, 7, 1), kind="milestone", due=june)
    assert overdue(date(2025, 7, 2), kind="milestone", due=june)
    assert not overdue(date(2025, 7, 5), kind="milestone", cad="monthly", due=june)
    assert overdue(date(2025, 7, 6), kind="milestone", cad="monthly", due=june)
    assert overdue(date(2025, 8, 12), kind="milestone", due=june, approved_on=date(2025, 8, 10))
    assert not overdue(date(2025, 8, 11), kind="milestone", due=june, approved_on=date(2025, 8, 10))
    # Due Dec 31 (the default): late in the next year, when the sweep still looks at the past year.
    assert not overdue(date(2026, 1, 1), kind="milestone") and overdue(date(2026, 1, 2), kind="milestone")


@pytest.mark.parametrize(("cad", "on", "last_on_time"), [
    ("daily", date(2025, 3, 10), date(2025, 3, 11)),
    ("weekly", date(2025, 1, 8), date(2025, 1, 13)),  # a Wednesday: the week ends Sunday the 12th
    ("weekly", date(2025, 1, 12), date(2025, 1, 13)),
    ("monthly", date(2025, 1, 15), date(2025, 2, 5)),
    ("monthly", date(2025, 12, 1), date(2026, 1, 5)),
])
def test_deadlines(cad: str, on: date, last_on_time: date) -> None:
    assert cadence.deadline(cad, on) == last_on_time
    assert not cadence.is_late(cad, on, last_on_time)
    assert cadence.is_late(cad, on, last_on_time + timedelta(days=1))
