"""Live routing state as Prometheus metrics, read at scrape time (nothing on the request path).

Per deployment (provider and model come from the config catalog, so the label set is bounded):
breaker state, in-flight attempts, rolling latency quantiles and error rate, and the share of
traffic a recovering deployment is ramping back to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from router_service.resilience.breaker import BreakerState
from router_service.resilience.live_state import DeploymentSnapshot, LiveState


class LiveStateCollector(Collector):
    def __init__(self, live: Callable[[], LiveState], keys: Callable[[], Sequence[str]]) -> None:
        # Callables, not objects: a config reload swaps the catalog and the collector follows.
        self._live = live
        self._keys = keys

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snapshots = self._live().snapshot(time.monotonic(), keys=self._keys())
        labels = ["provider", "model"]
        state = GaugeMetricFamily(
            "llmrouter_deployment_breaker_state",
            "1 for the breaker's current state (closed, open, half_open, ramping), 0 for the others.",
            labels=[*labels, "state"],
        )
        in_flight = GaugeMetricFamily(
            "llmrouter_deployment_in_flight", "Upstream attempts in flight.", labels=labels
        )
        latency = GaugeMetricFamily(
            "llmrouter_deployment_latency_seconds",
            "Rolling upstream latency quantile over the live-state window (absent without enough data).",
            labels=[*labels, "quantile"],
        )
        errors = GaugeMetricFamily(
            "llmrouter_deployment_error_ratio",
            "Rolling share of attempts that failed in a way that counts against health.",
            labels=labels,
        )
        ramp = GaugeMetricFamily(
            "llmrouter_deployment_ramp_fraction",
            "Share of traffic a deployment recovering from an outage may take (1 when fully back).",
            labels=labels,
        )
        for snap in snapshots:
            self._add(snap, state, in_flight, latency, errors, ramp)
        yield from (state, in_flight, latency, errors, ramp)

    @staticmethod
    def _add(
        snap: DeploymentSnapshot,
        state: GaugeMetricFamily,
        in_flight: GaugeMetricFamily,
        latency: GaugeMetricFamily,
        errors: GaugeMetricFamily,
        ramp: GaugeMetricFamily,
    ) -> None:
        provider, _, model = snap.key.partition("/")
        for s in BreakerState:
            state.add_metric([provider, model, s.value], 1.0 if snap.breaker.state is s else 0.0)
        in_flight.add_metric([provider, model], snap.in_flight)
        if snap.latency is not None:
            for q, value in (
                ("0.5", snap.latency.p50_s),
                ("0.95", snap.latency.p95_s),
                ("0.99", snap.latency.p99_s),
            ):
                latency.add_metric([provider, model, q], value)
        errors.add_metric([provider, model], snap.error_rate)
        ramp.add_metric([provider, model], snap.breaker.ramp_fraction)
