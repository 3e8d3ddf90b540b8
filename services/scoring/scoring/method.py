"""The published scoring method (scoring-method.md) as pure functions over plain data."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CHANNEL_WEIGHTS: Mapping[str, float] = {"survey": 0.6, "window": 0.25, "online": 0.15}
CHANNELS = ("survey", "window", "online")
# Two numbers within this distance of each other are equal when ranking.
TIE = 1e-9

# Where each feedback channel counts (method step 2).
CHANNEL_OF = {
    "window": "window", "web": "online", "mobile": "online", "hotline": "online",
    "face_to_face": "online", "exhibit_hall": "online", "open311": "online", "follow_up": "online",
}


def satisfaction(level: int) -> float:
    """Step 1: s = (level - 1) / 4."""
    return (level - 1) / 4


# config ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """The per-year parameters of the method, defaults as published."""

    w_public: float = 50.0
    w_targets: float = 45.0
    w_leaders: float = 5.0
    bonus_cap: float = 3.0
    prior_strength: float = 20.0
    channel_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CHANNEL_WEIGHTS))
    min_assessors: int = 3
    project_max: float = 1.5
    excellent_share: float = 0.2
    pass_line: float = 80.0
    objection_days: int = 7

    def as_dict(self) -> dict[str, Any]:
        return {"w_public": self.w_public, "w_targets": self.w_targets, "w_leaders": self.w_leaders,
                "bonus_cap": self.bonus_cap, "prior_strength": self.prior_strength,
                "channel_weights": dict(self.channel_weights), "min_assessors": self.min_assessors,
                "project_max": self.project_max, "excellent_share": self.excellent_share,
                "pass_line": self.pass_line, "objection_days": self.objection_days}


_NUMBERS = ("w_public", "w_targets", "w_leaders", "bonus_cap", "prior_strength", "project_max",
            "excellent_share", "pass_line")
_INTEGERS = ("min_assessors", "objection_days")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# Upper bounds that keep every accepted config's arithmetic finite: an objection period a datetime can
# hold (a year at most), and channel weights whose sums and squares stay far from overflowing.
MAX_OBJECTION_DAYS = 365
MAX_CHANNEL_WEIGHT = 1000.0
# Points on a 100-point scorecard: a project's bonus and the unit's cap are at most the whole card (a
# project_max of 1e308 summed over a unit's projects overflowed to infinity).
MAX_POINTS = 100.0


def config_problems(body: Mapping[str, Any]) -> list[str]:
    """Every problem of a config body (missing keys take the defaults); empty when it is valid."""
    problems: list[str] = []
    known = set(Config().as_dict())
    problems += [f"{key}: unknown setting" for key in sorted(set(body) - known)]
    merged = Config().as_dict() | {k: v for k, v in body.items() if k in known}
    # Each setting is checked on its own, so one of the wrong type hides none of the others' problems.
    ok = set(merged)
    for key in _NUMBERS:
        if not _is_number(merged[key]):
            problems.append(f"{key}: must be a number")
            ok.discard(key)
    for key in _INTEGERS:
        if not isinstance(merged[key], int) or isinstance(merged[key], bool):
            problems.append(f"{key}: must be an integer")
            ok.discard(key)
    for key in ("w_public", "w_targets", "w_leaders", "bonus_cap", "prior_strength", "pass_line"):
        if key in ok and merged[key] < 0:
            problems.append(f"{key}: must not be negative")
    if {"w_public", "w_targets", "w_leaders"} <= ok:
        total = merged["w_public"] + merged["w_targets"] + merged["w_leaders"]
        if abs(total - 100) > TIE:
            problems.append(f"w_public + w_targets + w_leaders must equal 100, not {total:g}")
    if "project_max" in ok and merged["project_max"] <= 0:
        problems.append("project_max: must be positive")
    for key in ("bonus_cap", "project_max"):
        if key in ok and merged[key] > MAX_POINTS:
            problems.append(f"{key}: at most {MAX_POINTS:g} points (the whole scorecard)")
    if "min_assessors" in ok and merged["min_assessors"] < 1:
        problems.append("min_assessors: must be at least 1")
    if "excellent_share" in ok and not 0 <= merged["excellent_share"] <= 1:
        problems.append("excellent_share: must be between 0 and 1")
    if "objection_days" in ok and not 0 <= merged["objection_days"] <= MAX_OBJECTION_DAYS:
        problems.append(f"objection_days: must be between 0 and {MAX_OBJECTION_DAYS}")
    weights = merged["channel_weights"]
    if not isinstance(weights, Mapping):
        problems.append("channel_weights: must be an object with survey, window and online")
        return problems
    for name in sorted(set(weights) - set(CHANNELS)):
        problems.append(f"channel_weights.{name}: unknown channel; channels are {', '.join(CHANNELS)}")
    for name in CHANNELS:
        if name not in weights:
            problems.append(f"channel_weights.{name}: missing")
        elif not _is_number(weights[name]) or not 0 < weights[name] <= MAX_CHANNEL_WEIGHT:
            problems.append(f"channel_weights.{name}: must be a positive number, at most {MAX_CHANNEL_WEIGHT:g}")
    return problems


def config_from(body: Mapping[str, Any]) -> Config:
    """A Config from a valid body (see config_problems); missing keys take the defaults."""
    merged = Config().as_dict() | dict(body)
    return Config(**{**merged, "channel_weights": {c: float(merged["channel_weights"][c]) for c in CHANNELS}})


# public evaluation ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelSums:
    """Sufficient statistics of one channel for one unit (or pooled city-wide).

    For the survey, `n` is the sum of weights, `sum_s` the weighted sum, `sum_w2` the sum of
    squared weights (for the effective sample size); for the others the weights are 1.
    """

    n: float = 0.0
    sum_s: float = 0.0
    sum_s2: float = 0.0
    sum_w2: float | None = None
    count: int = 0

    @property
    def mean(self) -> float | None:
        return self.sum_s / self.n if self.n > 0 else None

    @property
    def effective_n(self) -> float:
        if self.sum_w2 is None:
            return self.n
        return self.n * self.n / self.sum_w2 if self.sum_w2 > 0 else 0.0

    @property
    def variance(self) -> float:
        if self.n <= 0:
            return 0.0
        mean = self.sum_s / self.n
        return max(0.0, self.sum_s2 / self.n - mean * mean)

    def __add__(self, other: ChannelSums) -> ChannelSums:
        w2 = None if self.sum_w2 is None and other.sum_w2 is None else (self.sum_w2 or 0.0) + (other.sum_w2 or 0.0)
        return ChannelSums(n=self.n + other.n, sum_s=self.sum_s + other.sum_s, sum_s2=self.sum_s2 + other.sum_s2,
                           sum_w2=w2, count=self.count + other.count)


@dataclass(frozen=True)
class StratumSums:
    """One unit's survey ratings from one stratum: how many, and the sums of s and s^2."""

    count: int
    sum_s: float
    sum_s2: float


def survey_sums(cells: Mapping[str, StratumSums], strata: Mapping[str, tuple[int, int]]) -> ChannelSums:
    """Step 3, survey: post-stratified sums; `strata` maps a stratum to (population N_h, respondents n_h).

    Every respondent of stratum h weighs N_h / n_h, so the weighted sums follow from the
    per-stratum sums exactly, whatever n_h is when they are read.
    """
    n = sum_s = sum_s2 = sum_w2 = 0.0
    count = 0
    for stratum, cell in cells.items():
        population, respondents = strata.get(stratum, (0, 0))
        if respondents <= 0 or cell.count <= 0:
            continue
        w = population / respondents
        n += w * cell.count
        sum_s += w * cell.sum_s
        sum_s2 += w * cell.sum_s2
        sum_w2 += w * w * cell.count
        count += cell.count
    return ChannelSums(n=n, sum_s=sum_s, sum_s2=sum_s2, sum_w2=sum_w2, count=count)


def pooled(per_unit: Iterable[Mapping[str, ChannelSums]]) -> dict[str, ChannelSums]:
    """City-wide sums per channel: every counted rating of the year (step 4's m_c)."""
    out: dict[str, ChannelSums] = {}
    for channels in per_unit:
        for name, sums in channels.items():
            out[name] = out[name] + sums if name in out else sums
    return out


@dataclass
class PublicResult:
    S: float
    points: float
    interval: tuple[float, float] | None
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def public_evaluation(unit: Mapping[str, ChannelSums], city: Mapping[str, ChannelSums], *,
                      channel_weights: Mapping[str, float] = DEFAULT_CHANNEL_WEIGHTS,
                      prior_strength: float = 20.0, w_public: float = 50.0) -> PublicResult:
    """Steps 3 to 6: channel means, shrinkage toward the city, blend, points and interval."""
    channels: dict[str, dict[str, Any]] = {}
    used: list[tuple[float, float, float, float]] = []  # (weight, shrunk, n, variance)
    k = prior_strength
    for name, weight in channel_weights.items():
        sums = unit.get(name, ChannelSums())
        pooled_mean = city.get(name, ChannelSums()).mean
        n = sums.effective_n if name == "survey" else sums.n
        mean = sums.mean
        shrunk = None
        if n > 0 and mean is not None:
            m_c = pooled_mean if pooled_mean is not None else mean
            shrunk = (n * mean + k * m_c) / (n + k)
            used.append((weight, shrunk, n, sums.variance))
        entry: dict[str, Any] = {"n": sums.count if name == "survey" else int(sums.n), "mean": mean,
                                 "shrunk": shrunk, "weight": weight}
        if name == "survey":
            entry["effective_n"] = n
        channels[name] = entry
    if not used:
        return PublicResult(S=0.0, points=0.0, interval=None, channels=channels,
                            warnings=["no rating in any channel: public evaluation is 0"])
    total_w = sum(w for w, *_ in used)
    s_value = sum(w * shrunk for w, shrunk, *_ in used) / total_w
    var = sum((w / total_w) ** 2 * (n / (n + k)) ** 2 * v / n for w, _, n, v in used)
    half = 1.96 * math.sqrt(var)
    interval = (max(0.0, s_value - half), min(1.0, s_value + half))
    return PublicResult(S=s_value, points=w_public * s_value, interval=interval, channels=channels)


# targets, leaders, bonus ----------------------------------------------------------------


@dataclass(frozen=True)
class TargetInput:
    """An approved target of the unit and its value as of the scorecard's date (None: no report yet)."""

    target_id: str
    code: str
    kind: str
    direction: str
    baseline: float
    target: float
    weight: float
    value: float | None


def attainment(t: TargetInput) -> float | None:
    """r in [0, 1]; None for a target without a report or an invalid one (t = b, wrong direction)."""
    if t.value is None:
        return None
    if t.kind == "milestone":
        return 1.0 if t.value >= 1 else 0.0
    span = t.target - t.baseline
    if span == 0 or (t.direction == "increase") != (span > 0):
        return None
    r = (t.value - t.baseline) / span  # the same formula for increase and decrease: (b - a) / (b - t)
    return min(1.0, max(0.0, r))


@dataclass(frozen=True)
class ProjectInput:
    project_id: str
    assessments: Sequence[float]


@dataclass(frozen=True)
class UnitInputs:
    """Everything one unit's scorecard is computed from."""

    channels: Mapping[str, ChannelSums] = field(default_factory=dict)
    targets: Sequence[TargetInput] = ()
    grades: Sequence[float] = ()
    projects: Sequence[ProjectInput] = ()
    adjustments: Sequence[tuple[float, str]] = ()


def scorecard(unit_id: str, group: str, year: int, inputs: UnitInputs, city: Mapping[str, ChannelSums],
              config: Config) -> dict[str, Any]:
    """One unit's scorecard in api.md's shape, every intermediate number included; rank and grade unset."""
    public = public_evaluation(inputs.channels, city, channel_weights=config.channel_weights,
                               prior_strength=config.prior_strength, w_public=config.w_public)
    warnings = list(public.warnings)

    target_rows: list[dict[str, Any]] = []
    weighted = weights = 0.0
    for t in sorted(inputs.targets, key=lambda t: (t.code, t.target_id)):
        r = attainment(t)
        if r is None:
            warnings.append(f"target {t.code}: no progress report yet, r = 0" if t.value is None
                            else f"target {t.code}: invalid (target equals baseline or wrong direction), r = 0")
        target_rows.append({"target_id": t.target_id, "code": t.code, "weight": t.weight, "value": t.value,
                            "r": r if r is not None else 0.0})
        weighted += t.weight * (r or 0.0)
        weights += t.weight
    if not target_rows:
        warnings.append("no targets for the year: target attainment is 0")
    target_points = config.w_targets * weighted / weights if weights > 0 else 0.0

    grades = list(inputs.grades)
    leader_mean = sum(grades) / len(grades) if grades else None
    if leader_mean is None:
        warnings.append("no leader grade yet: leaders' evaluation is 0")
    leader_points = config.w_leaders * leader_mean / 100 if leader_mean is not None else 0.0

    project_rows: list[dict[str, Any]] = []
    for p in sorted(inputs.projects, key=lambda p: p.project_id):
        enough = len(p.assessments) >= config.min_assessors
        bonus = sum(p.assessments) / len(p.assessments) if enough else 0.0
        if not enough:
            warnings.append(f"project {p.project_id}: {len(p.assessments)} of {config.min_assessors} "
                            "assessments, no bonus yet")
        project_rows.append({"project_id": p.project_id, "assessments": len(p.assessments), "bonus": bonus})
    bonus_points = min(config.bonus_cap, sum(row["bonus"] for row in project_rows))

    adjustments: list[dict[str, Any]] = [{"points": p, "reason": r} for p, r in inputs.adjustments]
    components = {"public": public.points, "targets": target_points, "leaders": leader_points,
                  "bonus": bonus_points, "adjustments": float(sum(p for p, _ in inputs.adjustments))}
    return {
        "unit_id": unit_id, "year": year, "group": group, "rank": None, "grade": None, "final": False,
        "total": sum(components.values()), "components": components,
        "public": {"S": public.S, "interval": list(public.interval) if public.interval else None,
                   "channels": public.channels},
        "targets": target_rows, "leaders": {"n": len(grades), "mean": leader_mean},
        "bonus": {"projects": project_rows}, "adjustments": adjustments,
        "late_after_final": {"ratings": 0}, "warnings": warnings,
    }


# ranking and grades -----------------------------------------------------------------------


def _tie_classes(rows: list[dict[str, Any]], key: str) -> list[list[dict[str, Any]]]:
    """Sort descending by a number and group the rows within TIE of each group's largest.

    Anchoring each group at its largest number keeps every pair in a group within 1e-9 and
    never puts a clearly larger number below a smaller one; the order is the same whatever
    order the rows come in (ties are then broken by the next key, finally the unit id).
    """
    ordered = sorted(rows, key=lambda r: (-_number(r, key), str(r["unit_id"])))
    classes: list[list[dict[str, Any]]] = []
    for row in ordered:
        if classes and _number(classes[-1][0], key) - _number(row, key) <= TIE:
            classes[-1].append(row)
        else:
            classes.append([row])
    return classes


def _number(row: Mapping[str, Any], key: str) -> float:
    value: float = row["total"] if key == "total" else row["components"][key]
    return value


def ranking(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order one group: by total, then public points, then target points, then unit id."""
    out: list[dict[str, Any]] = []
    for by_total in _tie_classes(list(rows), "total"):
        for by_public in _tie_classes(by_total, "public"):
            for by_targets in _tie_classes(by_public, "targets"):
                out.extend(sorted(by_targets, key=lambda r: str(r["unit_id"])))
    return out


def excellent_places(size: int, share: float) -> int:
    return max(1, math.floor(share * size + TIE)) if size else 0


def grade(total: float, rank: int, size: int, config: Config) -> str:
    if total < config.pass_line:
        return "unsatisfactory"
    return "excellent" if rank <= excellent_places(size, config.excellent_share) else "good"


def year_scorecards(year: int, units: Mapping[str, str], inputs: Mapping[str, UnitInputs],
                    config: Config) -> dict[str, dict[str, Any]]:
    """Every unit's scorecard of a year (units maps unit id to group), ranked and graded per group."""
    empty = UnitInputs()
    city = pooled(inputs[u].channels for u in units if u in inputs)
    cards = {u: scorecard(u, group, year, inputs.get(u, empty), city, config) for u, group in units.items()}
    by_group: dict[str, list[dict[str, Any]]] = {}
    for card in cards.values():
        by_group.setdefault(card["group"], []).append(card)
    for rows in by_group.values():
        for place, card in enumerate(ranking(rows), start=1):
            card["rank"] = place
            card["grade"] = grade(card["total"], place, len(rows), config)
    return cards
