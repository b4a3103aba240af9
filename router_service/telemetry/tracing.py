"""OpenTelemetry traces: the tracer provider from config, and the request observer that turns a
request's steps into spans.

- Each gRPC call gets a SERVER span from opentelemetry-instrumentation-grpc's interceptor
  (installed by the app only when tracing is on), a child of the caller's `traceparent`.
- Each upstream attempt gets a CLIENT span named `chat <upstream model>` with the GenAI
  conventions' attributes (genai_semconv.py), a child of the call's span. Spans are built when
  the attempt is reported, from its record (start time and latency), so the engine carries no
  tracing code and the request path pays nothing when tracing is off.
- The winning attempt's span is made at completion, when its usage and finish reason are known.
- The routing decision and a final error go on the SERVER span as attributes.

The provider is the app's own, never the global one: two routers in one process (tests) each
export their own spans.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from router_service.call import CallContext, Completion, StreamFinish
from router_service.config_schema import TracingConfig
from router_service.domain import AttemptOutcome, AttemptRecord, ChatRequest, RouteDecision, Usage
from router_service.errors import status_of
from router_service.providers.base import ProviderEndpoint
from router_service.telemetry import genai_semconv as sc


def build_tracer_provider(config: TracingConfig) -> TracerProvider:
    """A provider exporting in batches from a background thread (never on the event loop)."""
    provider = TracerProvider(
        # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES (deployment.environment, ...).
        resource=Resource.create({"service.name": config.service_name}),
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
    )
    exporter: SpanExporter = (
        OTLPSpanExporter(endpoint=config.endpoint or None, timeout=config.export_timeout_s)
        if config.exporter == "otlp"
        else ConsoleSpanExporter(out=sys.stdout)  # the stdout of now, not of import time
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class TracingObserver:
    """A RequestObserver (engine.RequestObserver) that records spans; see the module docstring."""

    def __init__(self, tracer: trace.Tracer, endpoints: Callable[[], Mapping[str, ProviderEndpoint]]) -> None:
        # A callable: a config reload swaps the endpoints and the observer follows.
        self._tracer = tracer
        self._endpoints = endpoints
        # Per provider: (the endpoint they were derived from, its provider and server attributes).
        # Parsing the base URL per attempt would cost more than the rest of the span's attributes.
        self._provider_attributes: dict[str, tuple[ProviderEndpoint, dict[str, Any]]] = {}

    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(
                {
                    sc.REQUEST_ID: ctx.request_id,
                    sc.ROUTE_POLICY: decision.policy,
                    sc.ROUTE_STRATEGY: decision.strategy,
                    sc.ROUTE_CHOSEN: decision.chosen,
                    sc.ROUTE_FALLBACKS: list(decision.chain[1:]),
                    sc.API_KEY_ID: ctx.api_key_id,
                    sc.TEAM: ctx.team,
                    sc.CUSTOMER: ctx.customer,
                    sc.USER_ID: ctx.user,
                }
            )

    def on_attempt(self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str) -> None:
        if attempt.outcome is AttemptOutcome.SUCCESS and attempt.unused_usage is None:
            return  # the answer the caller got: its span is made at completion, with its usage
        if not _call_sampled():
            return
        extra: dict[str, Any] = {}
        if attempt.unused_usage is not None:
            extra = _usage_attributes(attempt.unused_usage, attempt.unused_cost_nanos)
            extra[sc.ATTEMPT_UNUSED] = True
        self._attempt_span(ctx, index, attempt, upstream_model, extra)

    def on_completion(
        self, ctx: CallContext, request: ChatRequest, outcome: Completion | StreamFinish, latency_s: float
    ) -> None:
        if not _call_sampled():
            return
        deployment = outcome.deployment
        winner = _winning_attempt(outcome.attempts, deployment.provider, deployment.model)
        if winner is None:
            return
        index, attempt = winner
        if isinstance(outcome, Completion):
            usage, finish = outcome.result.usage, outcome.result.finish_reason
            response_model, response_id = outcome.result.upstream_model, outcome.result.response_id
        else:
            usage, finish = outcome.done.usage, outcome.done.finish_reason
            response_model, response_id = outcome.done.upstream_model, ""
        extra = _usage_attributes(usage, outcome.cost_nanos)
        extra[sc.RESPONSE_FINISH_REASONS] = [finish.value]
        if response_model:
            extra[sc.RESPONSE_MODEL] = response_model
        if response_id:
            extra[sc.RESPONSE_ID] = response_id
        self._attempt_span(ctx, index, attempt, deployment.upstream_model, extra)

    def on_error(self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes({sc.REQUEST_ID: ctx.request_id, sc.ERROR_REASON: status_of(error)[1]})

    def _attempt_span(
        self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str, extra: dict[str, Any]
    ) -> None:
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OPERATION_CHAT,
            sc.REQUEST_MODEL: upstream_model,
            sc.REQUEST_STREAM: ctx.stream,
            sc.REQUEST_ID: ctx.request_id,
            sc.DEPLOYMENT: f"{attempt.provider}/{attempt.model}",
            sc.ATTEMPT_INDEX: index,
            sc.ATTEMPT_OUTCOME: attempt.outcome.value,
            sc.ATTEMPT_HEDGED: attempt.hedged,
        }
        attributes.update(self._provider(attempt.provider))
        if attempt.http_status:
            attributes[sc.HTTP_RESPONSE_STATUS_CODE] = attempt.http_status
        if attempt.time_to_first_token_s is not None and ctx.stream:
            attributes[sc.RESPONSE_TIME_TO_FIRST_CHUNK] = attempt.time_to_first_token_s
        if attempt.outcome is AttemptOutcome.ERROR:
            attributes[sc.ERROR_TYPE] = attempt.error_class or "_OTHER"
        attributes.update(extra)
        start_ns = int(attempt.started_at_unix_s * 1e9)
        span = self._tracer.start_span(
            f"{sc.OPERATION_CHAT} {upstream_model}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=start_ns,
        )
        if attempt.outcome is AttemptOutcome.ERROR:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start_ns + int(attempt.latency_s * 1e9))

    def _provider(self, name: str) -> dict[str, Any]:
        endpoint = self._endpoints().get(name)
        if endpoint is None:  # reloaded away since the attempt started: its name is all we have
            return {sc.PROVIDER_NAME: name}
        cached = self._provider_attributes.get(name)
        if cached is None or cached[0] is not endpoint:
            attributes = {sc.PROVIDER_NAME: sc.provider_name(endpoint), **sc.server_attributes(endpoint)}
            cached = self._provider_attributes[name] = (endpoint, attributes)
        return cached[1]


def _call_sampled() -> bool:
    """False when the call's span is not sampled: nor would its attempts be (ParentBased), so
    their attributes are not even built. True without a call span (the sampler decides)."""
    parent = trace.get_current_span()
    return parent.is_recording() or not parent.get_span_context().is_valid


def _winning_attempt(
    attempts: tuple[AttemptRecord, ...], provider: str, model: str
) -> tuple[int, AttemptRecord] | None:
    """The attempt whose answer the caller got: the last success on the chosen deployment."""
    for index in range(len(attempts) - 1, -1, -1):
        a = attempts[index]
        if (
            a.outcome is AttemptOutcome.SUCCESS
            and a.unused_usage is None
            and (a.provider, a.model) == (provider, model)
        ):
            return index, a
    return None


def _usage_attributes(usage: Usage, cost_nanos: int) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        sc.USAGE_INPUT_TOKENS: usage.input_tokens,
        sc.USAGE_OUTPUT_TOKENS: usage.output_tokens,
        sc.COST_NANO_USD: cost_nanos,
    }
    if usage.cached_input_tokens:
        attributes[sc.USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_input_tokens
    return attributes
