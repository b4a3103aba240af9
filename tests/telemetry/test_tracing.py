"""TracingObserver's spans for the attempts the integration tests cannot stage on demand: a hedge
loser whose answer nobody used, a cancelled attempt, and a provider reloaded away (the real SDK
with its in-memory exporter; no I/O); and the provider's console exporter and sampler."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from router_service.call import CallContext
from router_service.config_schema import TracingConfig
from router_service.domain import AttemptOutcome, AttemptRecord, RouteDecision, TaskType, Usage
from router_service.identity.model import Identity
from router_service.providers.base import ProviderEndpoint
from router_service.telemetry.tracing import TracingObserver, build_tracer_provider

ENDPOINTS = {"openai": ProviderEndpoint("openai", "openai", "https://api.openai.com/v1")}
CTX = CallContext(request_id="r-1", deadline=0.0, stream=False)


def _observer() -> tuple[TracingObserver, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TracingObserver(provider.get_tracer("test"), lambda: ENDPOINTS), exporter


def _attempt(outcome: AttemptOutcome, provider: str = "openai", **fields: object) -> AttemptRecord:
    return AttemptRecord(
        provider, "gpt-4o-mini", outcome, latency_s=0.25, started_at_unix_s=1_700_000_000.0, **fields
    )  # type: ignore[arg-type]


def test_the_decision_puts_the_callers_identity_on_the_server_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    observer = TracingObserver(tracer, lambda: ENDPOINTS)
    identity = Identity(key_id="k_search", team="search", customer="acme", user="u-42")
    ctx = CallContext(request_id="r-1", deadline=0.0, identity=identity)
    decision = RouteDecision("default", "priority", TaskType.CHAT, ("openai/gpt-4o-mini",), ())
    with tracer.start_as_current_span("router.v1.RouterService/Complete", kind=SpanKind.SERVER):
        observer.on_decision(ctx, decision)
    [span] = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert {key: attributes.get(key) for key in ("llmrouter.api_key.id", "llmrouter.team")} == {
        "llmrouter.api_key.id": "k_search",
        "llmrouter.team": "search",
    }
    assert (attributes.get("llmrouter.customer"), attributes.get("user.id")) == ("acme", "u-42")


def test_a_hedge_losers_answer_is_a_span_with_its_billed_usage() -> None:
    observer, exporter = _observer()
    loser = _attempt(
        AttemptOutcome.SUCCESS, hedged=True, unused_usage=Usage(10, 20, 4), unused_cost_nanos=1234
    )
    observer.on_attempt(CTX, 1, loser, "gpt-4o-mini-2024")
    [span] = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini-2024" and span.kind is SpanKind.CLIENT
    assert span.start_time == 1_700_000_000 * 10**9 and span.end_time == span.start_time + 250_000_000
    assert dict(span.attributes or {}) | {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini-2024",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 20,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "llmrouter.cost.nano_usd": 1234,
        "llmrouter.attempt.unused": True,
        "llmrouter.attempt.hedged": True,
        "server.address": "api.openai.com",
        "server.port": 443,
    } == dict(span.attributes or {})
    assert span.status.status_code is StatusCode.UNSET


def test_the_used_answer_waits_for_the_completion() -> None:
    observer, exporter = _observer()
    observer.on_attempt(CTX, 0, _attempt(AttemptOutcome.SUCCESS), "gpt-4o-mini")
    assert exporter.get_finished_spans() == ()


def test_a_cancelled_attempt_is_not_an_error_and_an_unknown_provider_keeps_its_name() -> None:
    observer, exporter = _observer()
    observer.on_attempt(
        CTX, 0, _attempt(AttemptOutcome.CANCELLED, provider="gone", error_class="cancelled"), "m"
    )
    [span] = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.provider.name"] == "gone" and "server.address" not in attributes
    assert attributes["llmrouter.attempt.outcome"] == "cancelled" and "error.type" not in attributes
    assert span.status.status_code is StatusCode.UNSET


def test_the_console_exporter_writes_spans_with_the_service_name(capsys: pytest.CaptureFixture[str]) -> None:
    config = TracingConfig(enabled=True, exporter="console", service_name="router-under-test")
    provider = build_tracer_provider(config)
    provider.get_tracer("test").start_span("chat m").end()
    provider.shutdown()  # flushes the batch
    out = capsys.readouterr().out
    assert '"name": "chat m"' in out and "router-under-test" in out


def test_sample_ratio_zero_records_nothing_but_a_sampled_caller_is_kept() -> None:
    provider = build_tracer_provider(TracingConfig(enabled=True, exporter="console", sample_ratio=0.0))
    tracer = provider.get_tracer("test")
    assert not tracer.start_span("root").is_recording()
    caller = trace.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(1, 2, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        )
    )
    assert tracer.start_span("child", context=caller).is_recording()
    provider.shutdown()
