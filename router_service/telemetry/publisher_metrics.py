"""Prometheus metrics of the event publisher (`llmrouter_events_*`) and its drop reporter.

Every label has a small closed value set: event kinds, drop reasons and error names are mapped
to fixed lists, so a broker misbehaving cannot blow up the series count.
"""

from __future__ import annotations

import collections
import logging
import time

from aiokafka.errors import KafkaError
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from router_service.telemetry.events import EVENT_KINDS
from router_service.telemetry.kafka_client import TopicMissingError

log = logging.getLogger("router_service.telemetry.publisher")

# Why an event was lost. Each is counted and logged; nothing is dropped silently.
DROP_REASONS = (
    "spool_full",  # the in-memory queue and the disk spool were both full
    "spool_error",  # the spool could not be written (disk full, permissions...)
    "too_large",  # bigger than the broker's or producer's maximum record size
    "encode_error",  # the event could not be encoded (a bug; logged with the traceback)
    "closed",  # published after stop()
)


class PublisherMetrics:
    """The publisher's counters and gauges, registered once per registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.published = Counter(
            "llmrouter_events_published",
            "Events acknowledged by the broker, by event type (replayed ones included).",
            ["type"],
            registry=registry,
        )
        self.spooled = Counter(
            "llmrouter_events_spooled",
            "Events written to the disk spool (broker unreachable or in-memory queue full).",
            registry=registry,
        )
        self.replayed = Counter(
            "llmrouter_events_replayed",
            "Events from the disk spool acknowledged by the broker.",
            registry=registry,
        )
        self.dropped = Counter(
            "llmrouter_events_dropped",
            "Events lost, by reason (see DROP_REASONS).",
            ["reason"],
            registry=registry,
        )
        self.publish_errors = Counter(
            "llmrouter_events_publish_errors",
            "Failed connects and deliveries to the broker, by error.",
            ["error"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "llmrouter_events_queue_depth",
            "Events waiting in the in-memory queue (sampled by the sender).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.spool_bytes = Gauge(
            "llmrouter_events_spool_bytes",
            "Bytes of segment files in the disk spool.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.broker_up = Gauge(
            "llmrouter_events_broker_up",
            "1 while the publisher is connected to the broker and the topic exists, else 0.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        # Pre-create every series, so dashboards and alerts see zeros rather than gaps.
        for kind in EVENT_KINDS:
            self.published.labels(type=kind)
        for reason in DROP_REASONS:
            self.dropped.labels(reason=reason)

    def count_error(self, exc: BaseException) -> None:
        self.publish_errors.labels(error=error_label(exc)).inc()


def error_label(exc: BaseException) -> str:
    """A bounded label for a broker error: aiokafka's error class names are a closed set."""
    if isinstance(exc, KafkaError):
        return type(exc).__name__
    if isinstance(exc, TopicMissingError):
        return "topic_missing"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return "os_error"
    return "other"


_default: PublisherMetrics | None = None


def default_metrics() -> PublisherMetrics:
    """The process-wide metrics on the default registry, created on first use."""
    global _default
    if _default is None:
        _default = PublisherMetrics()
    return _default


class DropReporter:
    """Counts every dropped event and logs drops at most once per interval per reason."""

    def __init__(self, metrics: PublisherMetrics, interval_s: float = 10.0) -> None:
        self._metrics = metrics
        self._interval_s = interval_s
        self._unlogged: collections.Counter[str] = collections.Counter()
        self._last_log: dict[str, float] = {}

    def drop(self, reason: str, count: int = 1) -> None:
        self._metrics.dropped.labels(reason=reason).inc(count)
        self._unlogged[reason] += count
        now = time.monotonic()
        if now - self._last_log.get(reason, float("-inf")) >= self._interval_s:
            self._log(reason)
            self._last_log[reason] = now

    def flush(self) -> None:
        """Log the drops still waiting for their interval (called at stop)."""
        for reason in list(self._unlogged):
            self._log(reason)

    def _log(self, reason: str) -> None:
        log.error("dropped %d telemetry events (reason: %s)", self._unlogged.pop(reason), reason)
