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

`normal_draws` gives the draws for a request from its uniform `random_value`: a window of a fixed
table of standard normals, so a request costs one slice instead of a generator and a `gauss()`
per candidate, and the same value (a sticky key) gives the same draws.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

_TABLE_SIZE = 8_192  # two requests share a window only if their values start it at the same slot
_PAD = 128  # windows up to this size never wrap: a plain slice
_gauss = random.Random(0x5EED).gauss
_NORMALS = [_gauss(0.0, 1.0) for _ in range(_TABLE_SIZE)]
_NORMALS += _NORMALS[:_PAD]


def normal_draws(random_value: float, count: int) -> list[float]:
    """`count` standard normal draws determined by `random_value` in [0, 1)."""
    start = int(random_value * _TABLE_SIZE) % _TABLE_SIZE
    if count <= _PAD:
        return _NORMALS[start : start + count]
    return [_NORMALS[(start + j) % _TABLE_SIZE] for j in range(count)]


class Choice:
    """What `choose` picked, and the rest of the group in fallback order, ranked lazily: a
    decision takes only the first few (`Policy.max_attempts`), usually the pick and the rest of
    the exploit band, so the others are sorted only when a chain reaches past the band."""

    __slots__ = ("_band", "_costs", "_group", "_means", "exploit", "explored", "pick")

    def __init__(
        self,
        pick: int,
        explored: bool,
        exploit: int,
        group: Sequence[int],
        band: list[int],
        means: Sequence[float],
        costs: Sequence[int],
    ) -> None:
        self.pick = pick
        self.explored = explored  # the pick is a probe
        self.exploit = exploit  # what the pick would have been without exploring
        self._group, self._band, self._means, self._costs = group, band, means, costs

    @property
    def order(self) -> list[int]:
        """The group, the pick first: `ranked` in full."""
        return list(self.ranked())

    def ranked(self) -> Iterator[int]:
        """The pick, then the exploit band cheapest first, then the others by mean (ties: cheaper,
        then index). Each part is ordered only once the consumer reaches it."""
        pick, band, means, costs = self.pick, self._band, self._means, self._costs
        yield pick
        in_band = [i for i in band if i != pick]  # the exploit pick too, after a probe
        if len(in_band) > 1:
            in_band.sort(key=lambda i: (costs[i], -means[i], i))
        yield from in_band
        taken = set(band)
        taken.add(pick)
        if len(taken) == len(self._group):
            return
        # Stable sorts on plain keys, least significant first, build no tuple per candidate.
        others = sorted([i for i in self._group if i not in taken])
        others.sort(key=costs.__getitem__)
        others.sort(key=means.__getitem__, reverse=True)  # reverse sorts are stable too
        yield from others


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
    `may_probe(probe, exploit)` asks the budget; None: no exploration (pinned call, no learner).
    `sds` is read only when exploring."""
    if not group:
        raise ValueError("choose: empty group")
    clearing = group if floor is None else [i for i in group if means[i] >= floor] or group
    cut = max([means[i] for i in clearing]) - tolerance
    band = [i for i in clearing if means[i] >= cut]  # usually a handful of the 50
    exploit = min(band, key=lambda i: (costs[i], -means[i], i)) if len(band) > 1 else band[0]
    pick, explored = exploit, False
    if may_probe is not None and len(group) > 1:
        sampled = [means[i] + sds[i] * draw for i, draw in zip(group, draws, strict=True)]
        cut = max(sampled) - tolerance
        contenders = [(costs[i], -s, i) for i, s in zip(group, sampled, strict=True) if s >= cut]
        probe = min(contenders)[2]
        if probe != exploit and may_probe(probe, exploit):
            pick, explored = probe, True
    return Choice(pick, explored, exploit, group, band, means, costs)
