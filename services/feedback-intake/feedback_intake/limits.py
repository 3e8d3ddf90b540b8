"""In-memory token buckets for per-token and per-client rate limits."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """`rate` requests per second on average, bursts up to `burst`; the oldest idle keys are dropped."""

    def __init__(self, *, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, *, scale: float = 1.0, now: float | None = None) -> float:
        """0 when allowed; otherwise the seconds to wait. `scale` multiplies rate and burst for this key."""
        now = time.monotonic() if now is None else now
        rate, burst = self.rate * scale, self.burst * scale
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=burst, stamp=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate if rate > 0 else math.inf
