"""What this router instance knows right now about each deployment ("provider/model").

Per deployment: rolling latency and time-to-first-token sketches, outcome counts by error class,
the in-flight count and a circuit breaker. Memory is bounded per deployment and every update is
O(1). Times are passed in; nothing here reads a clock.

The engine drives it around each upstream attempt:

    if not live.try_acquire(key, now):   # breaker admission (takes a probe slot when half-open)
        ...skip to the next deployment...
    live.begin(key, now)                 # in-flight + 1
    try:
        ... call ...
        live.record_success(key, latency_s, ttft_s, now)
      or
        live.record_failure(key, error.error_class, now, error.retry_after_s)
    finally:
        live.end(key)                    # in-flight - 1

Routing reads it once per decision, whatever the number of candidates: `unavailable_reasons`
(the planner's HealthView, bulk form), `latency_p95s`, `ttft_p95s` and `ramping` (its
LiveSignals). Metrics read `snapshot`; the engine's hedging may read `latency_p95_s` and
`answered_since`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from router_service.errors import ErrorClass
from router_service.resilience.breaker import BreakerConfig, BreakerSnapshot, BreakerState, CircuitBreaker
from router_service.resilience.error_policy import DEFAULT_ERROR_POLICY, ErrorPolicy
from router_service.resilience.latency_sketch import LatencySketch, Quantiles, SketchConfig
from router_service.resilience.quantile_board import QuantileBoard
from router_service.resilience.window import SlidingWindow

_ERROR_CLASSES = tuple(ErrorClass)
# Outcome counter layout: [attempts that say something about health, health failures, per class...]
_ATTEMPTS = 0
_HEALTH_FAILURES = 1
_CLASS_OFFSET = 2
_CLASS_INDEX = {c: _CLASS_OFFSET + i for i, c in enumerate(_ERROR_CLASSES)}
_NOTHING: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LiveStateConfig:
    # Rolling window for latency quantiles and error rates, kept in `window_slots` sub-windows.
    window_s: float = 60.0
    window_slots: int = 6
    # Below this many samples in the window a deployment has no quantiles ("cold").
    min_latency_samples: int = 10
    # Routing's P95s are recomputed about this often per deployment (reads are dict lookups).
    quantile_refresh_s: float = 1.0
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    error_policy: ErrorPolicy = DEFAULT_ERROR_POLICY

    def sketch_config(self) -> SketchConfig:
        return SketchConfig(
            window_s=self.window_s, slots=self.window_slots, min_samples=self.min_latency_samples
        )


@dataclass(frozen=True, slots=True)
class DeploymentSnapshot:
    key: str
    breaker: BreakerSnapshot
    in_flight: int
    latency: Quantiles | None
    ttft: Quantiles | None
    error_rate: float  # health failures / attempts that say something about health, in the window
    errors_by_class: Mapping[str, int]  # ErrorClass value -> failures in the window


class _Deployment:
    __slots__ = ("breaker", "has_samples", "in_flight", "last_success", "latency", "outcomes", "ttft")

    def __init__(self, config: LiveStateConfig, sketch: SketchConfig) -> None:
        self.breaker = CircuitBreaker(config.breaker)
        self.latency = LatencySketch(sketch)
        self.ttft = LatencySketch(sketch)
        self.outcomes = SlidingWindow(
            config.window_s, config.window_slots, _CLASS_OFFSET + len(_ERROR_CLASSES)
        )
        self.in_flight = 0
        self.has_samples = False  # tracked by the quantile board once it has latency samples
        self.last_success = -math.inf


class LiveState:
    def __init__(self, config: LiveStateConfig | None = None) -> None:
        self._config = config or LiveStateConfig()
        self._sketch = self._config.sketch_config()
        self._policy = self._config.error_policy
        self._deployments: dict[str, _Deployment] = {}
        self._board = QuantileBoard(self._config.quantile_refresh_s)
        # Breakers that are not CLOSED. Routing asks about every candidate on every request, and
        # almost all are healthy: this keeps the healthy answer to one dict lookup.
        self._impaired: dict[str, CircuitBreaker] = {}

    # --- engine: admission and outcomes ------------------------------------------------------

    def try_acquire(self, key: str, now: float) -> bool:
        """Whether the breaker lets a request go to `key` now; takes a probe slot if half-open."""
        breaker = self._get(key).breaker
        admitted = breaker.try_acquire(now)
        self._track(key, breaker)
        return admitted

    def begin(self, key: str, now: float) -> None:
        self._get(key).in_flight += 1

    def end(self, key: str) -> None:
        deployment = self._deployments.get(key)
        if deployment is not None and deployment.in_flight > 0:
            deployment.in_flight -= 1

    def record_success(self, key: str, latency_s: float, ttft_s: float | None, now: float) -> None:
        deployment = self._get(key)
        if not deployment.has_samples:
            deployment.has_samples = True
            self._board.track(key, deployment.latency, deployment.ttft, now)
        deployment.last_success = now
        deployment.outcomes.add(now, _ATTEMPTS)
        deployment.latency.record(latency_s, now)
        if ttft_s is not None:
            deployment.ttft.record(ttft_s, now)
        deployment.breaker.on_success(now)
        self._track(key, deployment.breaker)

    def record_failure(
        self, key: str, error_class: ErrorClass, now: float, retry_after_s: float | None = None
    ) -> float | None:
        """Returns the cooldown (s) when this failure opened the breaker, else None."""
        deployment = self._get(key)
        rule = self._policy.rule(error_class)
        outcomes = deployment.outcomes
        outcomes.add(now, _CLASS_INDEX[error_class])
        if rule.counts_against_health:
            outcomes.add(now, _ATTEMPTS)
            outcomes.add(now, _HEALTH_FAILURES)
        failure_rate = _ratio(outcomes.total(now, _HEALTH_FAILURES), outcomes.total(now, _ATTEMPTS))
        opened = deployment.breaker.on_failure(now, error_class, rule, retry_after_s, failure_rate)
        self._track(key, deployment.breaker)
        return opened

    # --- routing reads -----------------------------------------------------------------------

    def unavailable_reason(self, key: str, now: float) -> str | None:
        breaker = self._impaired.get(key)
        if breaker is None:
            return None
        reason = breaker.unavailable_reason(now)
        self._track(key, breaker)
        return reason

    def unavailable_reasons(self, now: float) -> Mapping[str, str]:
        """Every deployment that must not be used now, with why: one call per routing decision,
        costing nothing while every breaker is closed."""
        if not self._impaired:
            return _NOTHING
        reasons: dict[str, str] = {}
        for key, breaker in list(self._impaired.items()):
            reason = breaker.unavailable_reason(now)
            if reason is not None:  # open or half-open: still impaired
                reasons[key] = reason
            elif breaker.is_closed:  # what _track does, for the only state change a read can make
                del self._impaired[key]
        return reasons

    def ramping(self, now: float) -> Mapping[str, float]:
        """Deployments in slow start and their current ramp fraction: one call per decision."""
        if not self._impaired:
            return _NOTHING
        fractions: dict[str, float] = {}
        for key, breaker in list(self._impaired.items()):
            fraction = breaker.ramp_fraction(now)
            if fraction < 1.0:  # ramping: still impaired
                fractions[key] = fraction
            elif breaker.is_closed:  # what _track does, for the only state change a read can make
                del self._impaired[key]
        return fractions

    def ramp_fraction(self, key: str, now: float) -> float:
        breaker = self._impaired.get(key)
        if breaker is None:
            return 1.0
        fraction = breaker.ramp_fraction(now)
        self._track(key, breaker)
        return fraction

    def latency(self, key: str, now: float) -> Quantiles | None:
        deployment = self._deployments.get(key)
        return None if deployment is None else deployment.latency.quantiles(now)

    def ttft(self, key: str, now: float) -> Quantiles | None:
        deployment = self._deployments.get(key)
        return None if deployment is None else deployment.ttft.quantiles(now)

    def latency_p95_s(self, key: str, now: float) -> float | None:
        """Rolling P95 as routing sees it (refreshed about every quantile_refresh_s)."""
        self._board.refresh(now)
        return self._board.latency.get(key)

    def ttft_p95_s(self, key: str, now: float) -> float | None:
        self._board.refresh(now)
        return self._board.ttft.get(key)

    def latency_p95s(self, keys: Sequence[str], now: float) -> list[float | None]:
        """`latency_p95_s` for many keys at once: what the planner reads per request."""
        self._board.refresh(now)
        board = self._board.latency
        return list(map(board.get, keys))  # a C loop: faster than a comprehension

    def ttft_p95s(self, keys: Sequence[str], now: float) -> list[float | None]:
        self._board.refresh(now)
        board = self._board.ttft
        return list(map(board.get, keys))  # a C loop: faster than a comprehension

    def answered_since(self, key: str, since: float) -> bool:
        """Whether `key` has completed any attempt successfully at or after `since`."""
        deployment = self._deployments.get(key)
        return deployment is not None and deployment.last_success >= since

    def in_flight(self, key: str) -> int:
        deployment = self._deployments.get(key)
        return 0 if deployment is None else deployment.in_flight

    def error_rate(self, key: str, now: float) -> float:
        deployment = self._deployments.get(key)
        if deployment is None:
            return 0.0
        outcomes = deployment.outcomes
        return _ratio(outcomes.total(now, _HEALTH_FAILURES), outcomes.total(now, _ATTEMPTS))

    def breaker_state(self, key: str, now: float) -> BreakerState:
        deployment = self._deployments.get(key)
        return BreakerState.CLOSED if deployment is None else deployment.breaker.state(now)

    # --- metrics -----------------------------------------------------------------------------

    def snapshot(self, now: float, keys: Iterable[str] = ()) -> tuple[DeploymentSnapshot, ...]:
        """Every deployment seen so far, plus `keys` (e.g. the whole catalog), sorted by key."""
        all_keys = sorted(set(self._deployments) | set(keys))
        return tuple(self._snapshot_one(key, now) for key in all_keys)

    def _snapshot_one(self, key: str, now: float) -> DeploymentSnapshot:
        deployment = self._deployments.get(key) or _Deployment(self._config, self._sketch)
        totals = deployment.outcomes.totals(now)
        by_class = {c.value: totals[_CLASS_INDEX[c]] for c in _ERROR_CLASSES if totals[_CLASS_INDEX[c]]}
        return DeploymentSnapshot(
            key=key,
            breaker=deployment.breaker.snapshot(now),
            in_flight=deployment.in_flight,
            latency=deployment.latency.quantiles(now),
            ttft=deployment.ttft.quantiles(now),
            error_rate=_ratio(totals[_HEALTH_FAILURES], totals[_ATTEMPTS]),
            errors_by_class=MappingProxyType(by_class),
        )

    # --- internals ---------------------------------------------------------------------------

    def _get(self, key: str) -> _Deployment:
        deployment = self._deployments.get(key)
        if deployment is None:
            deployment = self._deployments[key] = _Deployment(self._config, self._sketch)
        return deployment

    def _track(self, key: str, breaker: CircuitBreaker) -> None:
        """Keep `_impaired` in step with the breaker's state (read without advancing time)."""
        if breaker.is_closed:
            self._impaired.pop(key, None)
        else:
            self._impaired[key] = breaker


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
