"""Round-robin: rotate through a group in configuration order, one step per request.

The rotation position is the request's `ticket` (a per-policy counter the router owns and
increments once per request), so consecutive requests start at consecutive members and a group of
n gets exactly 1/n of the first choices. The rest of the rotation is the fallback order.

Score: 1 for everyone (round-robin does not prefer anyone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from router_service.routing.strategies.base import RankContext, StrategyParams, TieBreak


@dataclass(frozen=True, slots=True)
class RoundRobin:
    name: ClassVar[str] = "round_robin"
    final: ClassVar[bool] = True

    @classmethod
    def from_params(cls, params: StrategyParams) -> RoundRobin:
        return cls()

    def scores(self, group: Sequence[int], ctx: RankContext) -> list[float]:
        return [1.0] * len(group)

    def order(
        self, group: list[int], scores: Sequence[float], ctx: RankContext, tie_break: TieBreak
    ) -> list[int]:
        in_config_order = sorted(group)
        start = ctx.ticket % len(in_config_order)
        return in_config_order[start:] + in_config_order[:start]
