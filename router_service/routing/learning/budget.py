"""How much exploration may take: a share of the requests, and a share of the spend.

Both are kept over a recent window (sums decayed by half every `half_life_s`), so a quiet hour
does not bank an allowance for a burst of probes later, and checked before each probe:
- traffic: probes <= traffic_share * requests + 1 (the 1 lets the very first request probe);
- spend: what probes cost beyond the pick they replaced <= spend_share * all spend, the probe's
  own cost included. An expensive model is so probed only once cheaper traffic paid for it.
Decay multiplies both sides of each bound by the same factor, so neither can be broken by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    traffic_share: float = 0.10  # at most this share of requests are probes
    spend_share: float = 0.10  # probes' extra cost at most this share of all spend
    half_life_s: float = 3_600.0  # the window both shares are kept over

    def __post_init__(self) -> None:
        if not (0.0 <= self.traffic_share <= 1.0 and 0.0 <= self.spend_share <= 1.0):
            raise ValueError("learning.exploration: shares must be in [0, 1]")
        if self.half_life_s <= 0:
            raise ValueError("learning.exploration: half_life_s must be > 0")


class ExplorationBudget:
    __slots__ = ("config", "explore_spend", "explored", "requests", "spend", "time_s")

    def __init__(self, config: BudgetConfig = BudgetConfig()) -> None:
        self.config = config
        self.requests = 0.0
        self.explored = 0.0
        self.spend = 0.0  # nano-USD, estimated
        self.explore_spend = 0.0  # cost of probes beyond the exploit picks they replaced
        self.time_s = 0.0

    def open(self, now_s: float) -> bool:
        """Whether the traffic share leaves room for a probe now, whatever it costs: when it does
        not, a request need not even draw a sample."""
        self._decay_to(now_s)
        return self.explored + 1.0 <= self.config.traffic_share * (self.requests + 1.0) + 1.0

    def allows(self, probe_cost: int, exploit_cost: int, now_s: float) -> bool:
        """Whether a probe costing `probe_cost` may replace a pick costing `exploit_cost` now."""
        self._decay_to(now_s)
        config = self.config
        if self.explored + 1.0 > config.traffic_share * (self.requests + 1.0) + 1.0:
            return False
        extra = max(probe_cost - exploit_cost, 0)
        return self.explore_spend + extra <= config.spend_share * (self.spend + probe_cost)

    def record(self, cost: int, extra_cost: int, explored: bool, now_s: float) -> None:
        """One routed request: its pick's cost, and for a probe what it cost beyond the exploit pick."""
        self._decay_to(now_s)
        self.requests += 1.0
        self.spend += cost
        if explored:
            self.explored += 1.0
            self.explore_spend += max(extra_cost, 0)

    def _decay_to(self, now_s: float) -> None:
        if now_s <= self.time_s:
            return
        factor = math.exp(-math.log(2.0) * (now_s - self.time_s) / self.config.half_life_s)
        self.requests *= factor
        self.explored *= factor
        self.spend *= factor
        self.explore_spend *= factor
        self.time_s = now_s
