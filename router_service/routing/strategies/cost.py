"""Cost-aware: the cheapest candidates first, with the near-equally cheap sharing the load.

Cost is the request's estimated cost on each candidate (its real token mix, see `routing.cost`),
not a list price. Candidates within `cost_tolerance` of the cheapest are a tie, and the next
strategy (round-robin by default) spreads requests among them instead of piling everything onto
the one deployment that is a fraction of a cent cheaper. The quality floor is a filter that runs
before any strategy (`Policy.min_quality`, `RoutingHints.min_quality`).

Score: cheapest cost / this cost, in (0, 1]; 1 is the cheapest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from router_service.routing.strategies.base import (
    RankContext,
    StrategyParams,
    TieBreak,
    order_in_bands,
    relative_band,
)


@dataclass(frozen=True, slots=True)
class CostAware:
    tolerance: float = 0.10
    name: ClassVar[str] = "cost"
    final: ClassVar[bool] = False

    @classmethod
    def from_params(cls, params: StrategyParams) -> CostAware:
        return cls(tolerance=params.cost_tolerance)

    def scores(self, group: Sequence[int], ctx: RankContext) -> list[float]:
        # +1 nano-USD keeps free deployments finite and still cheapest.
        cost_nanos = ctx.cost_nanos
        costs = [cost_nanos[i] + 1 for i in group]
        cheapest = min(costs)
        return [cheapest / c for c in costs]

    def order(
        self, group: list[int], scores: Sequence[float], ctx: RankContext, tie_break: TieBreak
    ) -> Iterator[int]:
        return order_in_bands(group, scores, relative_band(self.tolerance), tie_break)
