"""Named routing policies (default, cheap, fast, best, pii-safe...): candidates, constraints, strategy.

A policy is data: which models are candidates, hard constraints that exclude (each with a reason),
the strategy composition that orders what is left, how many deployments the engine may try, and
whether the engine hedges. Requests pick one by name (`RoutingHints.policy`). Everything is
validated on construction, so a typo in a strategy name fails at config load, not on a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router_service.domain import DataSensitivity
from router_service.routing.strategies import StrategyParams, compose


@dataclass(frozen=True, slots=True)
class HedgeConfig:
    """Race a second deployment when the first is slow. The engine races; routing says when.

    The delay is `delay_s` if set, else the first choice's rolling P95 (TTFT P95 when streaming),
    clamped to [min_delay_s, max_delay_s]; `cold_delay_s` while that deployment has no data.
    """

    enabled: bool = False
    delay_s: float | None = None
    min_delay_s: float = 0.05
    max_delay_s: float = 10.0
    cold_delay_s: float = 2.0
    # How many extra deployments may be raced against the first (each takes from the retry budget).
    max_hedges: int = 1

    def __post_init__(self) -> None:
        if self.max_hedges < 0 or not 0 <= self.min_delay_s <= self.max_delay_s:
            raise ValueError("hedge: max_hedges must be >= 0 and 0 <= min_delay_s <= max_delay_s")


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    # Candidate catalog model names (or "provider/model" keys), in priority order; empty: whole catalog.
    models: tuple[str, ...] = ()
    # Strategy composition, e.g. "quality>cost>round_robin" (registry keys joined by ">").
    strategy: str = "priority"
    # How many deployments the engine may try, first choice included (the chain's length).
    max_attempts: int = 3
    params: StrategyParams = field(default_factory=StrategyParams)
    # Hard constraints on top of each request's own hints (the stricter of the two applies).
    max_cost_nanos: int | None = None
    min_quality: float | None = None
    max_p95_s: float | None = None
    # Treat every request as at least this sensitive (a "pii-safe" policy says RESTRICTED).
    min_sensitivity: DataSensitivity | None = None
    regions: frozenset[str] = frozenset()  # empty: any region
    allowed_providers: frozenset[str] = frozenset()  # empty: any provider
    denied_providers: frozenset[str] = frozenset()
    hedge: HedgeConfig = field(default_factory=HedgeConfig)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("policy: name must not be empty")
        if self.max_attempts < 1:
            raise ValueError(f"policy {self.name!r}: max_attempts must be >= 1")
        try:
            compose(self.strategy, self.params)
        except ValueError as exc:
            raise ValueError(f"policy {self.name!r}: {exc}") from None
