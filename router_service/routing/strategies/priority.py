"""Priority: configuration order, as written in the policy's `models` (or the catalog).

Score: 1 for the first, falling linearly towards 0 for the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from router_service.routing.strategies.base import RankContext, StrategyParams, TieBreak


@dataclass(frozen=True, slots=True)
class Priority:
    name: ClassVar[str] = "priority"
    final: ClassVar[bool] = True

    @classmethod
    def from_params(cls, params: StrategyParams) -> Priority:
        return cls()

    def scores(self, group: Sequence[int], ctx: RankContext) -> list[float]:
        ranks = {index: rank for rank, index in enumerate(sorted(group))}
        return [1.0 - ranks[i] / len(group) for i in group]

    def order(
        self, group: list[int], scores: Sequence[float], ctx: RankContext, tie_break: TieBreak
    ) -> list[int]:
        return sorted(group)
