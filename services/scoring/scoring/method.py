"""The published scoring method (scoring-method.md) as pure functions over plain data."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CHANNEL_WEIGHTS: Mapping[str, float] = {"survey": 0.6, "window": 0.25, "online": 0.15}

# Where each feedback channel counts (method step 2).
CHANNEL_OF = {
    "window": "window", "web": "online", "mobile": "online", "hotline": "online",
    "face_to_face": "online", "exhibit_hall": "online", "open311": "online", "follow_up": "online",
}


def satisfaction(level: int) -> float:
    """Step 1: s = (level - 1) / 4."""
    return (level - 1) / 4


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
        pooled = city.get(name, ChannelSums()).mean
        n = sums.effective_n if name == "survey" else sums.n
        mean = sums.mean
        shrunk = None
        if n > 0 and mean is not None:
            m_c = pooled if pooled is not None else mean
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
