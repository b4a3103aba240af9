"""Quality-aware: the best-scoring candidates for the task first.

Scores come from the catalog's configured priors per task now (`Deployment.quality`) and from
the feedback loop later (a `QualityView` in the context overrides the prior where it has data).
Candidates within `quality_tolerance` (absolute) of the best are a tie for the next strategy, so
"best" can still prefer the cheaper or faster of two equally good models. Cost and latency floors
are filters that run before any strategy (`Policy.max_cost_nanos`, `Policy.max_p95_s`).

Score: the quality itself, in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

from router_service.routing.strategies.base import (
    RankContext,
    StrategyParams,
    TieBreak,
    absolute_band,
    order_in_bands,
)


@dataclass(frozen=True, slots=True)
class QualityAware:
    tolerance: float = 0.02
    name: ClassVar[str] = "quality"
    final: ClassVar[bool] = False

    @classmethod
    def from_params(cls, params: StrategyParams) -> QualityAware:
        return cls(tolerance=params.quality_tolerance)

    def scores(self, group: Sequence[int], ctx: RankContext) -> list[float]:
        qualities = ctx.qualities
        return [qualities[i] for i in group]

    def order(
        self, group: list[int], scores: Sequence[float], ctx: RankContext, tie_break: TieBreak
    ) -> Iterator[int]:
        return order_in_bands(group, scores, absolute_band(self.tolerance), tie_break)
