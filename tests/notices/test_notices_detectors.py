"""The detectors of notices.md as pure functions: tests, boundaries, and the false-alarm bound on noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from notices import detectors
from notices.detectors import (
    ComplaintCell,
    ComplaintSettings,
    SatisfactionSettings,
    TargetSettings,
    benjamini_hochberg,
    complaint_recurrence,
    recurrence_p_value,
    satisfaction_drop,
    target_off_track,
    wilson_interval,
)


def test_p_value_is_the_exact_binomial_tail() -> None:
    window, baseline, p0 = 9, 12, 0.2
    n = window + baseline
    tail = sum(math.comb(n, k) * p0**k * (1 - p0) ** (n - k) for k in range(window, n + 1))
    assert recurrence_p_value(window, baseline, p0) == pytest.approx(tail, rel=1e-12)
    # A cell with no history at all cannot be judged high: nothing to compare with.
    assert recurrence_p_value(0, 0, p0) == 1.0


def test_benjamini_hochberg_by_hand() -> None:
    # Ranked 0.005, 0.01, 0.03, 0.04 -> p * 4 / rank = 0.02, 0.02, 0.04, 0.04 (already monotone),
    # reported in the order given; the step-up carries a smaller later value down.
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([0.02, 0.03]) == pytest.approx([0.03, 0.03])
    assert benjamini_hochberg([0.9, 0.8]) == pytest.approx([0.9, 0.9])
    assert benjamini_hochberg([]) == []


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (10, 10), (24, 30), (700, 1000), (1, 3)])
def test_wilson_interval_agrees_with_statsmodels(successes: int, n: int) -> None:
    low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    assert wilson_interval(successes, n) == pytest.approx((low, high), abs=1e-9)


def _cells(target: ComplaintCell, quiet: int = 50) -> list[ComplaintCell]:
    # A realistic neighbourhood: quiet cells tested together with the one under study.
    return [target] + [ComplaintCell("u", f"quiet-{i}", 1, 4) for i in range(quiet)]


def test_complaint_recurrence_fires_on_a_significant_rise_with_its_evidence() -> None:
    settings = ComplaintSettings()
    cell = ComplaintCell("health-commission", "seeing-a-doctor", window=12, baseline=8)
    findings = {f.subject: f for f in complaint_recurrence(_cells(cell), settings, history_days=60)}
    fired = findings["seeing-a-doctor"]
    assert fired.fires
    ev = fired.evidence
    assert (ev["window_count"], ev["baseline_count"]) == (12, 8)
    assert ev["p0"] == pytest.approx(7 / 35)
    assert ev["expected_count"] == pytest.approx(20 * 7 / 35)
    assert ev["baseline_rate_per_day"] == pytest.approx(8 / 28)
    assert ev["p_value"] == pytest.approx(recurrence_p_value(12, 8, 0.2))
    assert ev["q_value"] <= 0.01 and ev["cells_tested"] == 51 and ev["decided_by"] == "test"
    assert not any(f.fires for s, f in findings.items() if s != "seeing-a-doctor")


def test_complaint_recurrence_needs_min_count_however_significant() -> None:
    settings = ComplaintSettings()
    # 4 in the window against nothing before: p = 0.2**4 = 0.0016, yet under min_count.
    four = complaint_recurrence([ComplaintCell("u", "c", 4, 0)], settings, history_days=60)[0]
    five = complaint_recurrence([ComplaintCell("u", "c", 5, 0)], settings, history_days=60)[0]
    assert four.evidence["p_value"] < 0.01 and not four.fires
    assert five.fires


def test_complaint_recurrence_stays_silent_when_the_rise_is_not_significant_after_bh() -> None:
    settings = ComplaintSettings()
    # Find the smallest window count that is significant on its own against a baseline of 20.
    w = next(w for w in range(5, 60) if recurrence_p_value(w, 20, 0.2) <= 0.01)
    alone = complaint_recurrence([ComplaintCell("u", "c", w, 20)], settings, history_days=60)[0]
    below = complaint_recurrence([ComplaintCell("u", "c", w - 1, 20)], settings, history_days=60)[0]
    assert alone.fires and not below.fires
    # Tested among 500 cells, the same count is no longer enough: BH raises the bar.
    crowd = complaint_recurrence(_cells(ComplaintCell("u", "c", w, 20), quiet=500), settings, history_days=60)
    assert not crowd[0].fires and crowd[0].evidence["q_value"] > 0.01


def test_with_short_history_min_count_alone_decides() -> None:
    settings = ComplaintSettings()
    cell = ComplaintCell("u", "c", 5, 40)  # not high at all against its baseline
    assert complaint_recurrence([cell], settings, history_days=34)[0].fires
    assert complaint_recurrence([cell], settings, history_days=34)[0].evidence["decided_by"] == "min_count"
    assert not complaint_recurrence([cell], settings, history_days=35)[0].fires
    assert not complaint_recurrence([ComplaintCell("u", "c", 4, 0)], settings, history_days=10)[0].fires


def test_cells_without_window_items_are_not_tested() -> None:
    findings = complaint_recurrence([ComplaintCell("u", "a", 0, 30), ComplaintCell("u", "b", 6, 0)],
                                    ComplaintSettings(), history_days=60)
    assert [f.subject for f in findings] == ["b"]
    assert findings[0].evidence["cells_tested"] == 1


def _sat(n: int, satisfied: int, pn: int = 0, psat: int = 0) -> bool:
    return satisfaction_drop(unit_id="u", subject="w", kind="window", n=n, satisfied=satisfied, previous_n=pn,
                             previous_satisfied=psat, settings=SatisfactionSettings()).fires


def test_satisfaction_drop_boundaries() -> None:
    # Threshold: the largest satisfied count whose Wilson upper bound is still under 0.80.
    n = 100
    k = max(s for s in range(n + 1) if wilson_interval(s, n)[1] < 0.80)
    assert _sat(n, k) and not _sat(n, k + 1)
    # Too few ratings: the same bad share at 29 ratings stays silent, at 30 it fires.
    assert not _sat(29, 10) and _sat(30, 10)
    # Drop: 0.97 before; the upper bound must fall under 0.87 (0.97 - 0.10) although above 0.80.
    pn, psat = 1000, 970
    k = max(s for s in range(n + 1) if wilson_interval(s, n)[1] < 0.87)
    assert wilson_interval(k, n)[1] > 0.80
    assert _sat(n, k, pn, psat) and not _sat(n, k + 1, pn, psat)
    assert not _sat(n, k)  # without the earlier period, only the threshold counts


def test_target_off_track_boundaries() -> None:
    s = TargetSettings()

    def fires(statuses: list[str], latest: str | None = None) -> bool:
        return target_off_track(unit_id="u", target_id="t", recent_statuses=statuses,
                                latest_status=latest or (statuses[-1] if statuses else None), settings=s).fires

    assert fires(["off_track"] * 7)
    assert not fires(["off_track"] * 6)
    assert not fires(["off_track"] * 3 + ["at_risk"] + ["off_track"] * 3)
    assert fires(["on_track"] + ["off_track"] * 7)
    assert fires([], latest="no_data")
    assert fires(["on_track"], latest="no_data")
    # The run speaks for the target only while it is off_track now: the tracker may move it on track (or
    # retire it) without a new report, and the same old reports must not raise a notice again.
    assert not fires(["off_track"] * 7, latest="on_track")
    assert not fires(["off_track"] * 7, latest="at_risk")
    assert not fires(["off_track"] * 7, latest=detectors.WITHDRAWN)


def test_satisfaction_recovers_only_on_as_many_ratings_as_firing_needs() -> None:
    s = SatisfactionSettings()
    # No ratings: the interval is (0, 1), but an empty window is no recovery.
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert not detectors.satisfaction_recovered(0, 0, s)
    assert not detectors.satisfaction_recovered(29, 29, s)
    assert detectors.satisfaction_recovered(30, 30, s)
    assert not detectors.satisfaction_recovered(30, 15, s)


def noise_year(seed: int, units: int = 53, categories: int = 22, days: int = 400) -> np.ndarray:
    """Poisson daily negative counts per (unit, category) at constant, realistic rates: no change at all.

    A category's own unit gets most of its complaints (0.1 to 3 a day); other units see a
    category now and then (a few a year).
    """
    rng = np.random.default_rng(seed)
    rates = rng.gamma(0.5, 0.02, size=(units, categories))
    for c in range(categories):
        rates[c % units, c] = rng.uniform(0.1, 3.0)
    return rng.poisson(rates[:, :, None], size=(units, categories, days))


def run_year(counts: np.ndarray, settings: ComplaintSettings) -> tuple[int, int, int]:
    """Evaluates every day once 35 days are held; returns (alarm days, alarms, evaluated days).

    An alarm is a cell firing when it did not fire the day before, i.e. a new notice had the
    previous one been closed; a notice staying open absorbs the following days' firings.
    """
    units, categories, days = counts.shape
    span = settings.window_days + settings.baseline_days
    cumulative = np.concatenate([np.zeros((units, categories, 1), dtype=np.int64), counts.cumsum(axis=2)], axis=2)
    firing: set[tuple[int, int]] = set()
    alarm_days = alarms = evaluated = 0
    for today in range(span - 1, days):
        w = cumulative[:, :, today + 1] - cumulative[:, :, today + 1 - settings.window_days]
        b = cumulative[:, :, today + 1 - settings.window_days] - cumulative[:, :, today + 1 - span]
        cells = [ComplaintCell(str(u), str(c), int(w[u, c]), int(b[u, c]))
                 for u in range(units) for c in range(categories) if w[u, c] > 0]
        now = {(int(f.unit_id), int(f.subject)) for f in complaint_recurrence(cells, settings, history_days=today + 1)
               if f.fires}
        new = now - firing
        alarms += len(new)
        alarm_days += bool(new)
        firing = now
        evaluated += 1
    return alarm_days, alarms, evaluated


def test_a_year_of_noise_raises_no_more_false_alarms_than_the_bound() -> None:
    """Under no change, BH at alpha over the cells tested on one day rejects anything with
    probability at most alpha (under the global null BH's FDR is its familywise error rate;
    the discrete exact test is conservative, and min_count only removes rejections). So the
    expected number of days with a false alarm over D evaluated days is at most alpha * D:
    3.65 for a year at alpha = 0.01. docs/decisions/notices-detection.md gives the figures.
    """
    settings = ComplaintSettings()
    counts = noise_year(seed=20260101)
    alarm_days, alarms, evaluated = run_year(counts, settings)
    assert evaluated >= 365
    bound = settings.alpha * evaluated
    print(f"noise year: {alarm_days} alarm days, {alarms} alarms over {evaluated} days; bound {bound:.2f}")
    assert alarm_days <= bound
    # The same noise with the rise injected into one cell: the detector is not simply mute.
    counts[0, 0, 200:214] += np.random.default_rng(1).poisson(3.0, size=14)
    assert run_year(counts, settings)[1] > alarms


def test_rules_are_the_four_of_the_contract() -> None:
    assert detectors.RULES == ("complaint-recurrence", "satisfaction-drop", "target-off-track",
                               "recurrence-after-rectification")
