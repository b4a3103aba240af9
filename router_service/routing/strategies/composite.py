"""Composition of strategies: score/choose with the first, break its ties with the next, and so on.

A composition is written as strategy names joined by ">", e.g. "quality>cost>round_robin": best
quality first; among the equally good, the cheapest; among the equally cheap, rotate. Filters
(floors and caps) have already run. A composition that does not end with a final strategy gets an
implicit round_robin, so ties always spread load instead of always going to the first in config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from router_service.routing.strategies.base import RankContext, Strategy, StrategyFactory, StrategyParams

SEPARATOR = ">"
IMPLICIT_TIE_BREAK = "round_robin"


class Composite:
    __slots__ = ("label", "primary", "steps")

    def __init__(self, steps: Sequence[Strategy]) -> None:
        if not steps:
            raise ValueError("a composition needs at least one strategy")
        self.steps = tuple(steps)
        self.primary: Strategy = self.steps[0]
        self.label = SEPARATOR.join(step.name for step in self.steps)

    def order(
        self, group: list[int], ctx: RankContext, scores: Sequence[float] | None = None
    ) -> Iterable[int]:
        """`group` best first, lazily: consume only as much as needed. `scores`, if given, are the
        primary strategy's scores for `group` (the planner has them already, for `Route`)."""
        return self._order(group, ctx, 0, scores)

    def scores(self, group: Sequence[int], ctx: RankContext) -> list[float]:
        """The primary strategy's scores: what `Route` shows per candidate."""
        return self.primary.scores(group, ctx)

    def _order(
        self, group: list[int], ctx: RankContext, depth: int, scores: Sequence[float] | None = None
    ) -> Iterable[int]:
        if len(group) <= 1 or depth == len(self.steps):
            return group
        step = self.steps[depth]
        if scores is None:
            scores = step.scores(group, ctx)
        return step.order(group, scores, ctx, lambda band: self._order(band, ctx, depth + 1))


def parse(spec: str, params: StrategyParams, registry: Mapping[str, StrategyFactory]) -> Composite:
    """Build a composition from "a>b>c"; unknown or misplaced names raise ValueError."""
    names = [name.strip() for name in spec.split(SEPARATOR)]
    if not all(names):
        raise ValueError(f"strategy {spec!r}: empty name in composition")
    if len(set(names)) != len(names):
        raise ValueError(f"strategy {spec!r}: a strategy appears twice")
    unknown = [n for n in names if n not in registry]
    if unknown:
        known = ", ".join(sorted(registry))
        raise ValueError(f"strategy {spec!r}: unknown {', '.join(unknown)} (known: {known})")
    steps = [registry[name](params) for name in names]
    for step in steps[:-1]:
        if step.final:
            raise ValueError(f"strategy {spec!r}: {step.name} orders everything, so it must come last")
    if not steps[-1].final:
        steps.append(registry[IMPLICIT_TIE_BREAK](params))
    return Composite(steps)
