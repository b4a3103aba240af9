"""Weighted: sample the first choice in proportion to configured weights (canary percentages).

`weights` maps a deployment key ("provider/model") or a model name to a weight; a key wins over
its model name, and unlisted candidates weigh 0 (they are never the first choice while anyone
with weight is eligible, but remain fallbacks). With {"gpt-4o": 95, "gpt-5": 5}, 5% of requests
go to gpt-5 first.

The sample is the request's `random_value` (uniform in [0, 1)): from a seeded generator in tests,
or a hash of a request or user id for sticky assignments. Fallbacks follow in descending weight.

Score: this weight / the group's total weight.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from router_service.routing.candidate import CandidateTable
from router_service.routing.strategies.base import RankContext, StrategyParams, TieBreak


@dataclass(frozen=True, slots=True)
class Weighted:
    weights: Mapping[str, float] = field(default_factory=dict)
    name: ClassVar[str] = "weighted"
    final: ClassVar[bool] = True

    @classmethod
    def from_params(cls, params: StrategyParams) -> Weighted:
        return cls(weights=params.weights)

    def weight(self, index: int, ctx: RankContext) -> float:
        return self._weights(ctx.table)[index]

    def scores(self, group: Sequence[int], ctx: RankContext) -> list[float]:
        column = self._weights(ctx.table)
        weights = [column[i] for i in group]
        total = sum(weights)
        return [w / total for w in weights] if total > 0 else [0.0] * len(weights)

    def _weights(self, table: CandidateTable) -> tuple[float, ...]:
        """Every candidate's weight, in table order: looked up once per table (tables are built
        once per policy), not per candidate per request. A key's weight wins over its model's."""
        found = table.weight_columns.get(id(self))
        if found is None:
            by_name = self.weights
            column = tuple(
                by_name.get(key, by_name.get(model, 0.0))
                for key, model in zip(table.keys, table.models, strict=True)
            )
            found = table.weight_columns[id(self)] = (self, column)
        return found[1]

    def order(
        self, group: list[int], scores: Sequence[float], ctx: RankContext, tie_break: TieBreak
    ) -> list[int]:
        # Shares are proportional to weights, so they sample the same; config order first, so
        # equal weights fall back deterministically.
        members = sorted(group)
        weights: Sequence[float] = scores
        if members != group:  # a tie-break band; the planner's eligible are in config order already
            share_of = dict(zip(group, scores, strict=True))
            weights = [share_of[i] for i in members]
        total = sum(weights)
        if total <= 0:
            return members
        cumulative = list(itertools.accumulate(weights))
        # bisect_right skips zero-weight members: their cumulative value equals their predecessor's.
        chosen = min(bisect.bisect_right(cumulative, ctx.random_value * total), len(members) - 1)
        # Descending weight; a reverse sort is still stable, so equal weights stay in config order.
        by_weight = sorted(range(len(members)), key=weights.__getitem__, reverse=True)
        return [members[chosen], *[members[j] for j in by_weight if j != chosen]]
