"""The four detectors of notices.md as pure functions over counts, each returning its evidence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import binom, norm
from statsmodels.stats.multitest import multipletests

COMPLAINT = "complaint-recurrence"
SATISFACTION = "satisfaction-drop"
TARGET = "target-off-track"
RECURRENCE = "recurrence-after-rectification"
RULES = (COMPLAINT, SATISFACTION, TARGET, RECURRENCE)
# A target's status here once target.changed says it was withdrawn (not a tracker status: it ends the target).
WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class ComplaintSettings:
    window_days: int = 7
    baseline_days: int = 28
    min_count: int = 5
    alpha: float = 0.01


@dataclass(frozen=True)
class SatisfactionSettings:
    window_days: int = 14
    previous_days: int = 28
    min_ratings: int = 30
    threshold: float = 0.80
    drop: float = 0.10
    confidence: float = 0.95


@dataclass(frozen=True)
class TargetSettings:
    consecutive_reports: int = 7


@dataclass(frozen=True)
class RecurrenceSettings:
    recurrence_days: int = 180


@dataclass(frozen=True)
class ComplaintCell:
    """Negative items of one (unit, category) cell in the trailing window and in the baseline before it."""

    unit_id: str
    category_id: str
    window: int
    baseline: int


@dataclass(frozen=True)
class Finding:
    """What one detector saw on one subject; `fires` says whether it calls for a notice."""

    rule: str
    unit_id: str
    subject: str
    fires: bool
    evidence: dict[str, Any] = field(default_factory=dict)


def recurrence_p_value(window: int, baseline: int, p0: float) -> float:
    """One-sided exact conditional test: P(X >= window) for X ~ Binomial(window + baseline, p0)."""
    n = window + baseline
    if n == 0:
        return 1.0
    return float(binom.sf(window - 1, n, p0))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted q-values, in the order given (statsmodels' fdr_bh: step-up, monotone, capped at 1)."""
    if not p_values:
        return []
    return [float(q) for q in multipletests(list(p_values), method="fdr_bh")[1]]


def complaint_recurrence(cells: Sequence[ComplaintCell], settings: ComplaintSettings, *,
                         history_days: int) -> list[Finding]:
    """Detector 1 over every cell with at least one negative item in its window, tested together.

    With less than window + baseline days of history the test has no baseline to stand on,
    so `min_count` alone decides (notices.md).
    """
    tested = [c for c in cells if c.window > 0]
    p0 = settings.window_days / (settings.window_days + settings.baseline_days)
    full_history = history_days >= settings.window_days + settings.baseline_days
    # One vectorised call: a sweep tests every cell of the city together.
    windows = np.array([c.window for c in tested], dtype=np.int64)
    totals = windows + np.array([c.baseline for c in tested], dtype=np.int64)
    p_values = [float(p) for p in binom.sf(windows - 1, totals, p0)] if tested else []
    q_values = benjamini_hochberg(p_values) if tested else []
    findings = []
    for cell, p, q in zip(tested, p_values, q_values, strict=True):
        enough = cell.window >= settings.min_count
        fires = enough and (q <= settings.alpha if full_history else True)
        n = cell.window + cell.baseline
        findings.append(Finding(rule=COMPLAINT, unit_id=cell.unit_id, subject=cell.category_id, fires=fires,
                                evidence={
                                    "window_count": cell.window, "baseline_count": cell.baseline,
                                    "window_days": settings.window_days,
                                    "baseline_days": settings.baseline_days,
                                    "baseline_rate_per_day": cell.baseline / settings.baseline_days,
                                    "expected_count": n * p0, "p0": p0,
                                    "p_value": p, "q_value": q, "cells_tested": len(tested),
                                    "alpha": settings.alpha, "min_count": settings.min_count,
                                    "decided_by": "test" if full_history else "min_count",
                                    "history_days": history_days}))
    return findings


def complaint_recovered(window: int, baseline: int, settings: ComplaintSettings) -> bool:
    """notices.md, verify: the cell's window count under min_count and not significant on its own."""
    p0 = settings.window_days / (settings.window_days + settings.baseline_days)
    return window < settings.min_count and recurrence_p_value(window, baseline, p0) > settings.alpha


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a share; (0, 1) when there is nothing to go on."""
    if n <= 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2))
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def satisfaction_drop(*, unit_id: str, subject: str, kind: str, n: int, satisfied: int, previous_n: int,
                      previous_satisfied: int, settings: SatisfactionSettings) -> Finding:
    """Detector 2: enough ratings, and the Wilson upper bound under the threshold or under last period - drop."""
    low, high = wilson_interval(satisfied, n, settings.confidence)
    previous_share = previous_satisfied / previous_n if previous_n > 0 else None
    below_threshold = high < settings.threshold
    dropped = previous_share is not None and high < previous_share - settings.drop
    fires = n >= settings.min_ratings and (below_threshold or dropped)
    return Finding(rule=SATISFACTION, unit_id=unit_id, subject=subject, fires=fires, evidence={
        "kind": kind, "n": n, "satisfied": satisfied, "share": satisfied / n if n else None,
        "wilson_low": low, "wilson_high": high, "previous_n": previous_n,
        "previous_satisfied": previous_satisfied, "previous_share": previous_share,
        "window_days": settings.window_days, "previous_days": settings.previous_days,
        "min_ratings": settings.min_ratings, "threshold": settings.threshold, "drop": settings.drop,
        "reason": "below_threshold" if below_threshold else ("dropped" if dropped else None)})


def satisfaction_recovered(n: int, satisfied: int, settings: SatisfactionSettings) -> bool:
    """notices.md, verify: the Wilson upper bound above the threshold, on as many ratings as firing needs
    (with none the interval is (0, 1), and its upper end would call any silence a recovery)."""
    return n >= settings.min_ratings and wilson_interval(satisfied, n, settings.confidence)[1] > settings.threshold


def target_off_track(*, unit_id: str, target_id: str, recent_statuses: Sequence[str], latest_status: str | None,
                     settings: TargetSettings) -> Finding:
    """Detector 3: `consecutive_reports` off_track reports in a row (newest last), or marked no_data.

    The run counts only while the target is off_track now: the tracker may move a target on track
    without a new report (a change of its baseline or target), and the old reports then no longer
    say what the target is.
    """
    k = settings.consecutive_reports
    run = 0
    for status in reversed(recent_statuses):
        if status != "off_track":
            break
        run += 1
    off_track = run >= k and latest_status == "off_track"
    no_data = latest_status == "no_data"
    return Finding(rule=TARGET, unit_id=unit_id, subject=target_id, fires=off_track or no_data, evidence={
        "latest_status": latest_status, "off_track_in_a_row": run, "consecutive_reports": k,
        "reason": "no_data" if no_data else ("off_track" if off_track else None)})
