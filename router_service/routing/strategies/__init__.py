"""Routing strategies and their registry: a strategy is a registry key, never an if/elif chain.

Adding one is a module with a `from_params` factory and one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from router_service.routing.strategies.base import (
    RankContext,
    Strategy,
    StrategyFactory,
    StrategyParams,
)
from router_service.routing.strategies.composite import Composite, parse
from router_service.routing.strategies.cost import CostAware
from router_service.routing.strategies.latency import LatencyAware
from router_service.routing.strategies.learned import Learned
from router_service.routing.strategies.priority import Priority
from router_service.routing.strategies.quality import QualityAware
from router_service.routing.strategies.round_robin import RoundRobin
from router_service.routing.strategies.weighted import Weighted

STRATEGIES: Mapping[str, StrategyFactory] = MappingProxyType(
    {
        "round_robin": RoundRobin.from_params,
        "weighted": Weighted.from_params,
        "latency": LatencyAware.from_params,
        "cost": CostAware.from_params,
        "quality": QualityAware.from_params,
        "learned": Learned.from_params,
        "priority": Priority.from_params,
    }
)


def compose(spec: str, params: StrategyParams | None = None) -> Composite:
    """A composition from "quality>cost>round_robin" using the registry; ValueError if invalid."""
    return parse(spec, params or StrategyParams(), STRATEGIES)


__all__ = [
    "STRATEGIES",
    "Composite",
    "RankContext",
    "Strategy",
    "StrategyFactory",
    "StrategyParams",
    "compose",
]
