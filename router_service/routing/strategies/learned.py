"""Learned: the cheapest deployment credibly as good as the best, probing the uncertain ones.

Reads each candidate's quality posterior for the request's region (`RankContext.posteriors`, from
a learning `QualityView`: `routing.learning.QualityLearner`) and picks with `learning.choose`:
the cheapest within `quality_tolerance` of the best posterior mean, unless a Thompson sample
says an under-sampled candidate may be the better deal and the view's exploration budget allows a
probe. Never probes for a pinned call, and never without a learning view (nothing would learn
from the probe). The normal draws are determined by the request's `random_value`
(`learning.normal_draws`): reproducible in tests, and sticky for a sticky key. No draw at all
while the budget's traffic share is spent: no probe could be taken.

Final: it orders the whole group itself (cost is part of the choice). Score: the posterior mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from router_service.routing.learning.budget import ExplorationBudget
from router_service.routing.learning.choice import choose, normal_draws
from router_service.routing.strategies.base import RankContext, StrategyParams, TieBreak


def learns(strategy: str) -> bool:
    """Whether a strategy composition ("quality>learned") includes `learned`: such a policy routes
    with the learner (`Router(learner=...)`) rather than the fleet's quality view."""
    return Learned.name in (part.strip() for part in strategy.split(">"))


@dataclass(frozen=True, slots=True)
class Learned:
    tolerance: float = 0.02
    name: ClassVar[str] = "learned"
    final: ClassVar[bool] = True

    @classmethod
    def from_params(cls, params: StrategyParams) -> Learned:
        return cls(tolerance=params.quality_tolerance)

    def scores(self, group: Sequence[int], ctx: RankContext) -> list[float]:
        posteriors = ctx.posteriors
        return [posteriors[i].mean for i in group]

    def order(
        self, group: list[int], scores: Sequence[float], ctx: RankContext, tie_break: TieBreak
    ) -> Iterable[int]:
        costs, now = ctx.cost_nanos, ctx.now
        budget: ExplorationBudget | None = getattr(ctx.quality_view, "budget", None)
        probing = budget is not None and not ctx.table.pinned_count
        if len(group) <= 1:
            if probing and group:  # still traffic that probes may take a share of
                assert budget is not None
                budget.record(costs[group[0]], 0, False, now)
            return group
        posteriors = ctx.posteriors
        means = [p.mean for p in posteriors]
        sds: Sequence[float] = ()
        draws: Sequence[float] = ()
        sampling = probing and budget is not None and budget.open(now)
        if sampling:  # the spreads only matter to a Thompson sample
            sds = [p.sd for p in posteriors]
            draws = normal_draws(ctx.random_value, len(group))

        def may_probe(probe: int, exploit: int) -> bool:
            assert budget is not None
            return budget.allows(costs[probe], costs[exploit], now)

        choice = choose(
            group,
            means,
            sds,
            costs,
            draws,
            tolerance=self.tolerance,
            floor=ctx.floor,
            may_probe=may_probe if sampling else None,
        )
        pick = choice.pick
        if probing:  # a pinned call neither probes nor counts as traffic probes may take a share of
            assert budget is not None
            budget.record(costs[pick], costs[pick] - costs[choice.exploit], choice.explored, now)
        if choice.explored:
            ctx.explored = pick
        # Lazily: the planner takes the first `max_attempts`, so the candidates past the exploit
        # band are sorted only when the chain reaches them.
        return choice.ranked()
