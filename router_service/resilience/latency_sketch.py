"""Rolling latency quantiles (P50/P95/P99) over a time window, in bounded memory.

Samples fall into log-spaced buckets (each `growth` times wider than the last, from `min_s` to
`max_s`), counted in a `SlidingWindow`. A quantile is the upper edge of the bucket where the
cumulative count crosses it, so it overestimates by at most `growth - 1` (10% by default): a
conservative error for a router that prefers the faster deployment.

Recording is O(1) (one logarithm, two increments). Reading is a cumulative sum and three binary
searches over ~140 buckets, in C (`itertools.accumulate`, `bisect`): a few microseconds, which is
why `LiveState` caches the results for routing rather than reading them per request.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

from router_service.resilience.window import SlidingWindow


@dataclass(frozen=True, slots=True)
class SketchConfig:
    window_s: float = 60.0
    slots: int = 6
    min_s: float = 0.001
    max_s: float = 600.0
    growth: float = 1.1
    # Fewer samples than this in the window: no quantiles (the cold-start rules apply instead).
    min_samples: int = 10


@dataclass(frozen=True, slots=True)
class Quantiles:
    p50_s: float
    p95_s: float
    p99_s: float
    count: int


class LatencySketch:
    __slots__ = ("_config", "_edges", "_log_growth", "_window")

    def __init__(self, config: SketchConfig) -> None:
        self._config = config
        self._log_growth = math.log(config.growth)
        buckets = math.ceil(math.log(config.max_s / config.min_s) / self._log_growth) + 1
        # Bucket i holds samples in (min_s * growth**(i-1), min_s * growth**i]; bucket 0 holds
        # everything at or below min_s, the last everything above max_s.
        self._edges = tuple(config.min_s * config.growth**i for i in range(buckets))
        self._window = SlidingWindow(config.window_s, config.slots, buckets)

    def record(self, seconds: float, now: float) -> None:
        self._window.add(now, self._bucket(seconds))

    def quantiles(self, now: float) -> Quantiles | None:
        """P50/P95/P99 over the window, or None with fewer than `min_samples` samples."""
        cumulative = list(itertools.accumulate(self._window.totals(now)))
        total = cumulative[-1]
        if total < self._config.min_samples:
            return None
        edges = self._edges
        return Quantiles(
            p50_s=edges[bisect.bisect_left(cumulative, 0.50 * total)],
            p95_s=edges[bisect.bisect_left(cumulative, 0.95 * total)],
            p99_s=edges[bisect.bisect_left(cumulative, 0.99 * total)],
            count=total,
        )

    def _bucket(self, seconds: float) -> int:
        if seconds <= self._config.min_s:
            return 0
        index = math.ceil(math.log(seconds / self._config.min_s) / self._log_growth)
        return min(index, len(self._edges) - 1)
