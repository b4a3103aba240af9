"""Routing signals from this instance's live state merged with the fleet view (pure).

- Exclusions (cooldown, open breaker) stay local: they react to this instance's own failures at
  once, and each instance probes a recovered deployment itself.
- Fleet health demotes, it does not exclude: a deployment the fleet sees failing leads the chain
  for only `FleetConfig.traffic_share(score)` of the requests it would win and is a fallback for
  the rest. Excluding it fleet-wide would stop every probe, and the fleet could never see it
  recover. The local breaker still excludes it as soon as this instance sees it fail.
- Latency: this instance's rolling P95 where it has enough samples, the fleet's otherwise (a cold
  start, or a deployment this instance stopped using).
- Quality: the configured prior, moved toward the fleet's mean feedback score by the consumer's
  confidence (count / (count + 10)).

`update` swaps one precomputed state object, so a request never sees half of a refresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from router_service.domain import TaskType
from router_service.fleet.config import FleetConfig
from router_service.fleet.view import EMPTY, FleetView, QualityStats
from router_service.resilience.live_state import LiveState


@dataclass(frozen=True, slots=True)
class _Derived:
    view: FleetView
    demoted: Mapping[str, float]  # deployment key -> share of requests it may still lead
    latency_p95: Mapping[str, float]
    ttft_p95: Mapping[str, float]
    model_of: dict[str, str] = field(default_factory=dict)  # deployment key -> model, filled lazily


class FleetSignals:
    """`BulkHealthView`, `LiveSignals` and `QualityView` for the planner."""

    def __init__(self, local: LiveState, config: FleetConfig, view: FleetView = EMPTY) -> None:
        self.local = local
        self.config = config
        self._state = _derive(view, config)

    def update(self, view: FleetView) -> None:
        self._state = _derive(view, self.config)

    @property
    def view(self) -> FleetView:
        return self._state.view

    @property
    def demoted(self) -> Mapping[str, float]:
        return self._state.demoted

    # --- health: local exclusions only -----------------------------------------------------------

    def unavailable_reason(self, key: str, now: float) -> str | None:
        return self.local.unavailable_reason(key, now)

    def unavailable_reasons(self, now: float) -> Mapping[str, str]:
        return self.local.unavailable_reasons(now)

    # --- live signals --------------------------------------------------------------------------

    def latency_p95s(self, keys: Sequence[str], now: float) -> list[float | None]:
        return _fill(self.local.latency_p95s(keys, now), keys, self._state.latency_p95)

    def ttft_p95s(self, keys: Sequence[str], now: float) -> list[float | None]:
        return _fill(self.local.ttft_p95s(keys, now), keys, self._state.ttft_p95)

    def ramping(self, now: float) -> Mapping[str, float]:
        local = self.local.ramping(now)
        demoted = self._state.demoted
        if not demoted:
            return local
        if not local:
            return demoted
        merged = dict(demoted)
        for key, share in local.items():
            merged[key] = min(share, merged.get(key, 1.0))
        return merged

    # --- quality -------------------------------------------------------------------------------

    def quality_view(self) -> FleetSignals | None:
        """Self when the fleet has quality data, else None (the planner then skips the lookups)."""
        return self if self._state.view.quality else None

    def quality(self, key: str, task: TaskType, prior: float) -> float:
        state = self._state
        model = state.model_of.get(key)
        if model is None:
            # Deployment keys are "<provider>/<model>"; provider names cannot contain "/".
            model = state.model_of[key] = key.partition("/")[2]
        stats = state.view.quality.get((model, task))
        return prior if stats is None else _blend(stats, prior)

    def observed(self, key: str, task: TaskType) -> bool:
        """`ObservedQualityView`: the fleet has feedback for this deployment's model and task."""
        return (key.partition("/")[2], task) in self._state.view.quality


def _blend(stats: QualityStats, prior: float) -> float:
    return stats.confidence * stats.mean + (1.0 - stats.confidence) * prior


def _fill(local: list[float | None], keys: Sequence[str], fleet: Mapping[str, float]) -> list[float | None]:
    if not fleet:
        return local
    return [fleet.get(key) if mine is None else mine for mine, key in zip(local, keys, strict=True)]


def _derive(view: FleetView, config: FleetConfig) -> _Derived:
    demoted = {}
    for key, health in view.health.items():
        share = config.traffic_share(health.score)
        if share < 1.0:
            demoted[key] = share
    return _Derived(
        view=view,
        demoted=demoted,
        latency_p95={k: h.latency_p95_s for k, h in view.health.items() if h.latency_p95_s is not None},
        ttft_p95={k: h.ttft_p95_s for k, h in view.health.items() if h.ttft_p95_s is not None},
    )
