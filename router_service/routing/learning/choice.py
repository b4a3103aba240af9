"""The learned pick (pure): the cheapest candidate credibly as good as the best, or a probe.

Given each eligible candidate's posterior (mean, sd), its estimated cost and one standard normal
draw per candidate:
- exploit: among the candidates whose posterior mean clears the floor (all of them when none
  does: the filter let them through on their upper bounds), the best mean; the cheapest within
  `tolerance` of it is the pick;
- Thompson sample: each candidate's quality drawn from its posterior (mean + sd * draw); the
  cheapest within `tolerance` of the best draw. An arm with few scores has a wide posterior and
  so often draws high: that is how under-sampled candidates get tried, in proportion to how
  plausibly they are the better deal;
- when the sample's pick differs from the exploit pick it is a probe, taken only if the caller
  did not pin a model and the budget allows it (`ExplorationBudget`); else the exploit pick.
The fallbacks follow: the exploit band cheapest first, then the rest by posterior mean.
Hard filters (cost caps, sensitivity, regions, key scopes, health) ran before: a probe is only
ever one of the candidates they left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Choice:
    order: list[int]  # the group, the pick first
    explored: bool  # the pick is a probe
    exploit: int  # what the pick would have been without exploring


def choose(
    group: Sequence[int],
    means: Sequence[float],
    sds: Sequence[float],
    costs: Sequence[int],
    draws: Sequence[float],
    *,
    tolerance: float,
    floor: float | None,
    may_probe: Callable[[int, int], bool] | None,
) -> Choice:
    """`means`, `sds`, `costs` are indexed by candidate (like the table), `draws` like `group`.
    `may_probe(probe, exploit)` asks the budget; None: no exploration (pinned call, no learner)."""
    if not group:
        raise ValueError("choose: empty group")
    clearing = group if floor is None else [i for i in group if means[i] >= floor] or group
    best = max(means[i] for i in clearing)
    band = [i for i in clearing if means[i] >= best - tolerance]
    exploit = min(band, key=lambda i: (costs[i], -means[i], i))
    pick, explored = exploit, False
    if may_probe is not None and len(group) > 1:
        sampled = {i: means[i] + sds[i] * draw for i, draw in zip(group, draws, strict=True)}
        best_draw = max(sampled.values())
        probe = min(
            (i for i in group if sampled[i] >= best_draw - tolerance),
            key=lambda i: (costs[i], -sampled[i], i),
        )
        if probe != exploit and may_probe(probe, exploit):
            pick, explored = probe, True
    in_band = set(band)
    rest = sorted(
        (i for i in group if i != pick),
        key=lambda i: (0, costs[i], -means[i], i) if i in in_band else (1, -means[i], costs[i], i),
    )
    return Choice([pick, *rest], explored, exploit)
