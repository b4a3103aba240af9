"""Prometheus metrics of the fleet view (`llmrouter_fleet_*`).

Labels: `topic` is one of health | quality | costs; `deployment` is a configured provider/model
("provider/model"), so both sets are bounded by config.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge


class FleetMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.stale = Gauge(
            "llmrouter_fleet_view_stale",
            "1 while a snapshot topic is stale (no record for fleet.stale_after_s) and the router "
            "routes on local state alone.",
            ["topic"],
            registry=registry,
        )
        self.ready = Gauge(
            "llmrouter_fleet_view_ready",
            "1 once the router has read the snapshot topics to the end offsets they had at its start "
            "(it serves from then on, or after fleet.startup_wait_s without it); 0 before.",
            registry=registry,
        )
        self.age = Gauge(
            "llmrouter_fleet_snapshot_age_seconds",
            "Age of the newest record read from a snapshot topic (by its timestamp).",
            ["topic"],
            registry=registry,
        )
        self.catching_up = Gauge(
            "llmrouter_fleet_snapshot_catching_up",
            "1 while a topic's consumers say (in their checkpoints) that some input partition is "
            "replaying or behind: its rollups read short until they catch up.",
            ["topic"],
            registry=registry,
        )
        self.lag = Gauge(
            "llmrouter_fleet_snapshot_lag_records",
            "Input records a topic's consumers had not counted yet, summed over input partitions, "
            "as their latest checkpoints state.",
            ["topic"],
            registry=registry,
        )
        self.watermark_age = Gauge(
            "llmrouter_fleet_snapshot_watermark_age_seconds",
            "Wall clock minus the oldest input partition's event-time watermark in a topic's latest "
            "checkpoints (grows while no events arrive; with catching_up, how far behind it is).",
            ["topic"],
            registry=registry,
        )
        self.records = Counter(
            "llmrouter_fleet_snapshot_records", "Snapshot records read.", ["topic"], registry=registry
        )
        self.decode_errors = Counter(
            "llmrouter_fleet_snapshot_decode_errors",
            "Snapshot records skipped because they were not router.v1.Snapshot values this version "
            "reads (or, from before the schema, JSON objects).",
            ["topic"],
            registry=registry,
        )
        self.traffic_share = Gauge(
            "llmrouter_fleet_traffic_share",
            "Share of the requests a deployment the fleet sees unhealthy may still lead (1: not demoted).",
            ["deployment"],
            registry=registry,
        )
        self.health_score = Gauge(
            "llmrouter_fleet_health_score",
            "Fleet health score per deployment (router_contract/health_score.py), where the fleet has data.",
            ["deployment"],
            registry=registry,
        )


_default: FleetMetrics | None = None


def default_metrics() -> FleetMetrics:
    """The process-wide metrics on the default registry, created on first use."""
    global _default
    if _default is None:
        _default = FleetMetrics()
    return _default
