"""Builders of sample events and a real Kafka reader for the telemetry tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from router_service import domain
from router_service.telemetry import events as ev
from router_service.telemetry.publisher import PublisherConfig
from router_service.telemetry.publisher_metrics import PublisherMetrics

NOW = 1_795_000_000.25


def context(request_id: str = "req-1", **overrides: Any) -> ev.RequestContext:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "api_key_id": "key-7",
        "team": "search",
        "customer": "acme",
        "user": "u-4711",
        "tags": {"feature": "summarise", "plan": "pro"},
    }
    fields.update(overrides)
    return ev.RequestContext(**fields)


def decision() -> domain.RouteDecision:
    return domain.RouteDecision(
        policy="balanced",
        strategy="cost",
        task_type=domain.TaskType.CODE,
        chain=("openai/gpt-4o-mini", "anthropic/claude-haiku", "sim/m3"),
        candidates=(
            domain.CandidateView(
                "openai", "gpt-4o-mini", True, score=0.91, estimated_cost_nanos=1_234_567_890_123
            ),
            domain.CandidateView("anthropic", "claude-haiku", True, score=0.5, estimated_cost_nanos=42),
            domain.CandidateView("big", "ctx-small", False, "context window 8192 < 12000", 0.0, 0),
        ),
    )


def attempt(**overrides: Any) -> domain.AttemptRecord:
    fields: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "outcome": domain.AttemptOutcome.ERROR,
        "latency_s": 0.4321,
        "error_class": "rate_limited",
        "http_status": 429,
        "time_to_first_token_s": None,
        "started_at_unix_s": NOW - 1.5,
        "retry_after_s": 2.0,
    }
    fields.update(overrides)
    return domain.AttemptRecord(**fields)


def completion(**overrides: Any) -> ev.CompletionEvent:
    fields: dict[str, Any] = {
        "provider": "anthropic",
        "model": "claude-haiku",
        "usage": domain.Usage(input_tokens=1200, output_tokens=340, cached_input_tokens=1000),
        "cost_nanos": 987_654_321_012,
        "latency_s": 1.25,
        "attempt_count": 2,
        "stream": True,
        "finish_reason": domain.FinishReason.STOP,
    }
    fields.update(overrides)
    return ev.CompletionEvent(**fields)


def bodies() -> dict[str, ev.EventBody]:
    """One body of every kind, with most fields set to something other than a default."""
    return {
        "decision": ev.DecisionEvent(decision()),
        "attempt": ev.AttemptEvent(1, attempt(), "gpt-4o-mini-2024-07-18", hedged=True),
        "completion": completion(prompt_text="hi ✓", completion_text="hello"),
        "error": ev.ErrorEvent("UNAVAILABLE", "ALL_UPSTREAMS_FAILED", "every upstream failed", 3),
        "feedback": ev.FeedbackEvent(0.75, {"source": "thumbs"}, evaluator=True),
        "governance": ev.GovernanceEvent(
            decision="deny",
            reserved_cost_nanos=8_192_050,
            reserved_tokens=4_101,
            policy="default",
            level="team",
            entity="team:search ✓",
            metric="cost",
            limit=1_000_000_000,
            current=995_000_000,
            asked=8_192_050,
            period="month (Europe/Berlin)",
            hedge=True,
            retry_after_s=3600.25,
        ),
    }


def event(body: ev.EventBody | None = None, request_id: str = "req-1") -> ev.TelemetryEvent:
    return ev.TelemetryEvent.create(
        context(request_id), body or ev.ErrorEvent("INTERNAL", "INTERNAL", "boom", 0), now_unix_s=NOW
    )


def events(count: int, request_ids: Iterable[str] = ("req-a", "req-b", "req-c")) -> list[ev.TelemetryEvent]:
    ids = list(request_ids)
    return [event(ev.FeedbackEvent(i / count), request_id=ids[i % len(ids)]) for i in range(count)]


def unique_topic() -> str:
    return f"test.events.{uuid.uuid4().hex[:12]}"


def publisher_config(bootstrap: str, topic: str, spool_dir: str, **overrides: Any) -> PublisherConfig:
    fields: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "topic": topic,
        "spool_dir": spool_dir,
        "enable_idempotence": False,  # Tansu rejects aiokafka's InitProducerId v0
        "request_timeout_ms": 2000,
        "probe_interval_s": 0.1,
        "linger_ms": 1,
    }
    fields.update(overrides)
    return PublisherConfig(**fields)


class Metrics(PublisherMetrics):
    """Publisher metrics on a private registry, with a reader for sample values."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        super().__init__(self.registry)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


async def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


async def read_topic(
    bootstrap: str, topic: str, expected_ids: set[str], timeout_s: float = 15.0
) -> list[tuple[str, bytes | None, list[tuple[str, bytes]]]]:
    """Every record of `topic` as (event_id, key, headers), read from the earliest offset.

    Polls until every expected id was seen (or the timeout), then once more briefly so that
    unexpected extra records show up too.
    """
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: list[tuple[str, bytes | None, list[tuple[str, bytes]]]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not expected_ids <= {record[0] for record in seen}:
            seen += _records(await consumer.getmany(timeout_ms=200))
        seen += _records(await consumer.getmany(timeout_ms=300))
    finally:
        await consumer.stop()
    return seen


def _records(batches: dict[Any, list[Any]]) -> list[tuple[str, bytes | None, list[tuple[str, bytes]]]]:
    out = []
    for records in batches.values():
        for record in records:
            headers = list(record.headers)
            out.append((dict(headers)["ce_id"].decode(), record.key, headers))
    return out
