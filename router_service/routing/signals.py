"""What routing reads about the world, as Protocols: health, live latency, quality scores.

`resilience.live_state.LiveState` implements `HealthView` and `LiveSignals`; the fleet view
(`fleet.signals.FleetSignals`) wraps it and adds fleet health, latency and a `QualityView`.
Routing depends only on these shapes, never on who implements them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from router_service.domain import TaskType
from router_service.routing.learning.posterior import Posterior


class HealthView(Protocol):
    """Implementations may also offer `unavailable_reasons` (see `BulkHealthView`); the planner
    then asks once per request instead of once per candidate."""

    def unavailable_reason(self, key: str, now: float) -> str | None:
        """Why deployment `key` must not be used now, or None if it may."""
        ...


class BulkHealthView(HealthView, Protocol):
    def unavailable_reasons(self, now: float) -> Mapping[str, str]:
        """Every deployment that must not be used now, with why (usually few or none)."""
        ...


class LiveSignals(Protocol):
    """Bulk reads: the planner asks once per request for all its candidates."""

    def latency_p95s(self, keys: Sequence[str], now: float) -> list[float | None]:
        """Rolling P95 of whole-request latency per key; None while there is too little data."""
        ...

    def ttft_p95s(self, keys: Sequence[str], now: float) -> list[float | None]:
        """Rolling P95 of time to first token per key; None while there is too little data."""
        ...

    def ramping(self, now: float) -> Mapping[str, float]:
        """Deployments in slow start, with the share of the traffic they would win that they may
        take now (in (0, 1)); usually empty."""
        ...


class QualityView(Protocol):
    """Implementations may also offer `observed` (see `ObservedQualityView`): a deployment with
    no configured prior then becomes known, and subject to quality floors, once it has feedback."""

    def quality(self, key: str, task: TaskType, prior: float) -> float:
        """Quality in [0, 1] for `key` on `task`: what was observed, weighed against the configured
        `prior` as the view sees fit (the prior itself where nothing was observed)."""
        ...


class ObservedQualityView(QualityView, Protocol):
    def observed(self, key: str, task: TaskType) -> bool:
        """Whether `quality` for (`key`, `task`) rests on feedback, not on the prior alone."""
        ...


class PosteriorQualityView(ObservedQualityView, Protocol):
    """A view that learns (`learning.QualityLearner`): quality with its uncertainty. Floors then
    compare against the optimistic bound `mean + floor_z * sd`, and the `learned` strategy probes
    within `budget` (an `ExplorationBudget`)."""

    @property
    def floor_z(self) -> float: ...

    def posterior(self, key: str, task: TaskType, prior: float, now_s: float) -> Posterior: ...

    def posteriors(
        self, keys: Sequence[str], task: TaskType, priors: Sequence[float], now_s: float
    ) -> list[Posterior]:
        """`posterior` per key (with its prior) in one call: the planner reads every candidate."""
        ...


class AlwaysHealthy:
    def unavailable_reason(self, key: str, now: float) -> str | None:
        return None

    def unavailable_reasons(self, now: float) -> Mapping[str, str]:
        return {}
