"""Prometheus metrics of the consumer processes (`llmrouter_consumer_*`).

Labels are bounded: `consumer` is a job name (costs, health, quality), `partition` an input
partition number (as many as the topic has), `reason`, `trigger` and `outcome` fixed sets.
Records per second: `rate(llmrouter_consumer_records_total[1m])`, or the
`llmrouter_consumer_records_per_second` gauge, measured between flushes, for a quick look.
"""

from __future__ import annotations

import contextlib

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

DUPLICATE_REASONS = ("redelivered", "event_id")
# Why an event was not counted: "late" (older than every window kept; any job), and the quality
# job's feedback checks (consumers/quality/aggregate.py).
DROP_REASONS = (
    "late",
    "unattributed",
    "invalid_score",
    "not_allowed",
    "superseded",
    "too_many_scorers",
)
FLUSH_TRIGGERS = ("interval", "heartbeat", "revoke", "shutdown")


class ConsumerMetrics:
    """Every consumer metric, registered once per registry; JobMetrics binds the job label."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._add_input_metrics(registry)
        self._add_partition_metrics(registry)
        self._add_flush_metrics(registry)

    def _add_input_metrics(self, registry: CollectorRegistry) -> None:
        """What happened to the records read: counted, skipped as duplicates, dropped, undecodable."""
        self.records = Counter(
            "llmrouter_consumer_records",
            "Records read from the input topic.",
            ["consumer"],
            registry=registry,
        )
        self.records_per_second = Gauge(
            "llmrouter_consumer_records_per_second",
            "Records read per second between the last two flushes.",
            ["consumer"],
            registry=registry,
        )
        self.counted = Counter(
            "llmrouter_consumer_events_counted",
            "Events added to the aggregates (or to the quality join index).",
            ["consumer"],
            registry=registry,
        )
        self.duplicates = Counter(
            "llmrouter_consumer_duplicates_skipped",
            "Records skipped as already counted: redelivered (offset already in the state, after a "
            "restart or rebalance) or event_id (a publisher resend).",
            ["consumer", "reason"],
            registry=registry,
        )
        self.dropped = Counter(
            "llmrouter_consumer_events_dropped",
            "Events not counted, by reason: late (older than every window kept), and for feedback "
            "unattributed (unknown request), invalid_score, not_allowed (the scorer may not score "
            "the request), superseded (older than the scorer's score in force), too_many_scorers.",
            ["consumer", "reason"],
            registry=registry,
        )
        self.decode_errors = Counter(
            "llmrouter_consumer_decode_errors",
            "Records that are not a router.v1.Event (skipped).",
            ["consumer"],
            registry=registry,
        )

    def _add_partition_metrics(self, registry: CollectorRegistry) -> None:
        """The input partitions owned: how many, how far behind, where their state came from."""
        self.lag = Gauge(
            "llmrouter_consumer_lag_records",
            "Records in the partition not yet counted (high watermark minus next offset).",
            ["consumer", "partition"],
            registry=registry,
        )
        self.partitions = Gauge(
            "llmrouter_consumer_assigned_partitions",
            "Input partitions owned.",
            ["consumer"],
            registry=registry,
        )
        self.restores = Counter(
            "llmrouter_consumer_partition_restores",
            "Partitions taken on, by source: snapshot (read back from the snapshot topic) or kept "
            "(state still in memory from before the rebalance).",
            ["consumer", "source"],
            registry=registry,
        )

    def _add_flush_metrics(self, registry: CollectorRegistry) -> None:
        """The snapshot flushes: why, how long, what they published, and the commits after them."""
        self.flushes = Counter(
            "llmrouter_consumer_flushes",
            "Snapshot flushes, by trigger (interval, heartbeat, revoke, shutdown) and outcome (ok, error).",
            ["consumer", "trigger", "outcome"],
            registry=registry,
        )
        self.flush_seconds = Histogram(
            "llmrouter_consumer_flush_duration_seconds",
            "Time to publish a flush's snapshot records and have them acknowledged.",
            ["consumer"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.snapshot_records = Counter(
            "llmrouter_consumer_snapshot_records",
            "Records published to the snapshot topic (checkpoints and tombstones included).",
            ["consumer"],
            registry=registry,
        )
        self.commit_errors = Counter(
            "llmrouter_consumer_commit_errors",
            "Offset commits that failed (the snapshot was published; the next flush commits again).",
            ["consumer"],
            registry=registry,
        )


_default: ConsumerMetrics | None = None


def default_metrics() -> ConsumerMetrics:
    """The process-wide metrics on the default registry, created on first use (registering them
    twice in one registry fails; the CLI and the embedded stack may both ask in one process)."""
    global _default
    if _default is None:
        _default = ConsumerMetrics(REGISTRY)
    return _default


class JobMetrics:
    """The metrics of one job, with the `consumer` label bound once (not per record)."""

    def __init__(self, metrics: ConsumerMetrics, job: str) -> None:
        self._metrics = metrics
        self._job = job
        self.records = metrics.records.labels(consumer=job)
        self.records_per_second = metrics.records_per_second.labels(consumer=job)
        self.counted = metrics.counted.labels(consumer=job)
        self.dropped = {
            reason: metrics.dropped.labels(consumer=job, reason=reason) for reason in DROP_REASONS
        }
        self.decode_errors = metrics.decode_errors.labels(consumer=job)
        self.duplicates = {
            reason: metrics.duplicates.labels(consumer=job, reason=reason) for reason in DUPLICATE_REASONS
        }
        self.partitions = metrics.partitions.labels(consumer=job)
        self.flush_seconds = metrics.flush_seconds.labels(consumer=job)
        self.snapshot_records = metrics.snapshot_records.labels(consumer=job)
        self.commit_errors = metrics.commit_errors.labels(consumer=job)

    def flush(self, trigger: str, outcome: str) -> None:
        self._metrics.flushes.labels(consumer=self._job, trigger=trigger, outcome=outcome).inc()

    def restored(self, source: str, count: int) -> None:
        if count:
            self._metrics.restores.labels(consumer=self._job, source=source).inc(count)

    def set_lag(self, partition: int, lag: int) -> None:
        self._metrics.lag.labels(consumer=self._job, partition=str(partition)).set(lag)

    def forget_partition(self, partition: int) -> None:
        with contextlib.suppress(KeyError):  # no lag reading yet
            self._metrics.lag.remove(self._job, str(partition))
