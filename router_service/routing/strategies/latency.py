"""Latency-aware: the candidates with the lowest rolling P95 first.

P95 comes from live state over its configured window (time to first token for streaming
requests, when known). Candidates within `latency_tolerance` of the fastest are a tie for the next
strategy, so two equally fast deployments share the load rather than one taking all of it (which
would soon make it the slower one).

Cold start: a deployment with too little data in the window gets `cold_start_p95_s` if configured,
else the median P95 of the candidates that have data: a new deployment neither wins everything on
no evidence nor starves (it still ties with, and rotates among, typical candidates, which earns it
the samples it needs). With no data for anyone, all tie.

Score: fastest P95 / this P95, in (0, 1]; 1 is the fastest.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, cast

from router_service.routing.strategies.base import (
    RankContext,
    StrategyParams,
    TieBreak,
    order_in_bands,
    relative_band,
)

_FLOOR_S = 1e-6


@dataclass(frozen=True, slots=True)
class LatencyAware:
    tolerance: float = 0.10
    cold_start_p95_s: float | None = None
    name: ClassVar[str] = "latency"
    final: ClassVar[bool] = False

    @classmethod
    def from_params(cls, params: StrategyParams) -> LatencyAware:
        return cls(tolerance=params.latency_tolerance, cold_start_p95_s=params.cold_start_p95_s)

    def scores(self, group: Sequence[int], ctx: RankContext) -> list[float]:
        live_p95s = ctx.p95s
        observed = [live_p95s[i] for i in group]
        p95s = self._with_cold_start(observed) if None in observed else cast("list[float]", observed)
        if not p95s:
            return [1.0] * len(group)
        fastest = min(p95s)
        if fastest < _FLOOR_S:  # a zero P95 (clock granularity) must not divide by zero
            p95s = [max(p, _FLOOR_S) for p in p95s]
            fastest = _FLOOR_S
        return [fastest / p for p in p95s]

    def _with_cold_start(self, observed: list[float | None]) -> list[float]:
        """P95s with the cold-start value for those without data; empty if no one has data."""
        known = [p for p in observed if p is not None]
        if not known:
            return []
        cold = self.cold_start_p95_s if self.cold_start_p95_s is not None else statistics.median(known)
        return [cold if p is None else p for p in observed]

    def order(
        self, group: list[int], scores: Sequence[float], ctx: RankContext, tie_break: TieBreak
    ) -> Iterator[int]:
        return order_in_bands(group, scores, relative_band(self.tolerance), tie_break)
