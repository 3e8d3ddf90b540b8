"""The annual report's statistics as pure functions: shares of negative feedback, the test, effects."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

ALPHA = 0.05
TEST = ("one-sided two-proportion z-test of a category's share of the year's negative feedback against the "
        "previous year's, Benjamini-Hochberg adjusted across categories, alpha 0.05")


@dataclass(frozen=True)
class CategoryShare:
    category_id: str
    negative: int
    share: float | None
    previous_negative: int
    previous_share: float | None
    change: float | None
    p_value: float | None
    q_value: float | None
    priority: bool


def rise_p_value(x1: int, n1: int, x0: int, n0: int) -> float | None:
    """P(share this year >= observed | no change) by the pooled two-proportion z-test; None without data."""
    if n1 == 0 or n0 == 0:
        return None
    pooled = (x1 + x0) / (n1 + n0)
    if pooled in (0.0, 1.0):
        return 1.0  # every negative item (or none) in this category both years: no change measurable
    z = (x1 / n1 - x0 / n0) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    return float(norm.sf(z))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted q-values, in the order given (statsmodels' fdr_bh: step-up, monotone, capped at 1)."""
    if not p_values:
        return []
    return [float(q) for q in multipletests(list(p_values), method="fdr_bh")[1]]


def category_shares(this_year: Mapping[str, int], last_year: Mapping[str, int],
                    alpha: float = ALPHA) -> list[CategoryShare]:
    """Each category's share of all negative items, this year against last, largest share first."""
    n1, n0 = sum(this_year.values()), sum(last_year.values())
    categories = sorted(set(this_year) | set(last_year))
    p = {c: rise_p_value(this_year.get(c, 0), n1, last_year.get(c, 0), n0) for c in categories}
    tested = [c for c in categories if p[c] is not None]
    q = dict(zip(tested, benjamini_hochberg([p[c] or 1.0 for c in tested]), strict=True))
    rows = []
    for c in categories:
        x1, x0 = this_year.get(c, 0), last_year.get(c, 0)
        share = x1 / n1 if n1 else None
        previous = x0 / n0 if n0 else None
        change = share - previous if share is not None and previous is not None else None
        rows.append(CategoryShare(c, x1, share, x0, previous, change, p[c], q.get(c),
                                  priority=q.get(c) is not None and (q.get(c) or 1.0) < alpha
                                  and (change or 0.0) > 0))
    rows.sort(key=lambda r: (-(r.share or 0.0), r.category_id))
    return rows


def week_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class Effect:
    weeks: int
    before: float
    after: float | None
    held: bool | None


def effect(weekly_negative: Iterable[tuple[date, int]], *, issued: date, verified: date, today: date,
           min_weeks: int = 4) -> Effect:
    """Negative items a week over the span before the notice and the same span after verification.

    The span is the weeks from issue to verification (at least `min_weeks`); after verification
    only whole weeks that have passed count, so a fresh fix shows `after` as None until a week ends.
    """
    counts: dict[date, int] = {}
    for week, n in weekly_negative:
        counts[week] = counts.get(week, 0) + n
    span = max(min_weeks, (week_of(verified) - week_of(issued)).days // 7)
    first_before = week_of(issued) - timedelta(weeks=span)
    before = sum(counts.get(first_before + timedelta(weeks=i), 0) for i in range(span)) / span
    start_after = week_of(verified) + timedelta(weeks=1)
    elapsed = min(span, max(0, (week_of(today) - start_after).days // 7))
    if elapsed == 0:
        return Effect(span, before, None, None)
    after = sum(counts.get(start_after + timedelta(weeks=i), 0) for i in range(elapsed)) / elapsed
    return Effect(span, before, after, after <= before)


def weekly_means(days: Iterable[tuple[date, str, int, float]]) -> tuple[list[date], dict[str, list[float | None]]]:
    """Fold (day, channel, n, sum s) rows into weekly mean satisfaction per channel."""
    sums: dict[tuple[date, str], list[float]] = {}
    for day, channel, n, s in days:
        cell = sums.setdefault((week_of(day), channel), [0.0, 0.0])
        cell[0] += n
        cell[1] += s
    weeks = sorted({w for w, _c in sums})
    channels = sorted({c for _w, c in sums})
    out: dict[str, list[float | None]] = {}
    for c in channels:
        out[c] = [(sums[(w, c)][1] / sums[(w, c)][0]) if (w, c) in sums and sums[(w, c)][0] > 0 else None
                  for w in weeks]
    return weeks, out
