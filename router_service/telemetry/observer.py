"""The engine's RequestObservers: request steps become Prometheus metrics and Kafka events.

Called on the request path, so every method is synchronous and cheap: labelled metric children
are resolved once per deployment (a `labels()` call takes a lock and a dict lookup each time).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from router_service.cache import metrics as cache_metrics
from router_service.domain import AttemptOutcome, AttemptRecord, ChatRequest, RouteDecision, Usage
from router_service.engine import CallContext, Completion, RequestObserver, StreamFinish
from router_service.errors import RouterError, status_of
from router_service.telemetry import metrics
from router_service.telemetry.events import (
    AttemptEvent,
    CompletionEvent,
    DecisionEvent,
    ErrorEvent,
    EventBody,
    EventSink,
    TelemetryEvent,
)


@dataclass(frozen=True, slots=True)
class _DeploymentMetrics:
    input_tokens: Counter
    output_tokens: Counter
    cached_tokens: Counter
    cost: Counter
    ttft: Histogram

    @classmethod
    def build(cls, provider: str, model: str) -> _DeploymentMetrics:
        return cls(
            input_tokens=metrics.TOKENS.labels(provider, model, "input"),
            output_tokens=metrics.TOKENS.labels(provider, model, "output"),
            cached_tokens=metrics.TOKENS.labels(provider, model, "cached_input"),
            cost=metrics.COST.labels(provider, model),
            ttft=metrics.UPSTREAM_TTFT.labels(provider, model),
        )


@functools.cache
def _deployment(provider: str, model: str) -> _DeploymentMetrics:
    return _DeploymentMetrics.build(provider, model)


@functools.cache
def _saved_cost(provider: str, model: str) -> Counter:
    return cache_metrics.SAVED_COST.labels(provider, model)


@functools.cache
def _decisions(policy: str, strategy: str) -> Counter:
    return metrics.DECISIONS.labels(policy, strategy)


@functools.cache
def _attempt_children(provider: str, model: str, outcome: str, error_class: str) -> tuple[Counter, Histogram]:
    return (
        metrics.UPSTREAM_ATTEMPTS.labels(provider, model, outcome, error_class),
        metrics.UPSTREAM_DURATION.labels(provider, model, outcome),
    )


class MetricsObserver:
    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None:
        _decisions(decision.policy, decision.strategy).inc()

    def on_attempt(self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str) -> None:
        count, duration = _attempt_children(
            attempt.provider, attempt.model, attempt.outcome.value, attempt.error_class
        )
        count.inc()
        duration.observe(attempt.latency_s)
        if attempt.outcome is AttemptOutcome.SUCCESS and attempt.time_to_first_token_s is not None:
            _deployment(attempt.provider, attempt.model).ttft.observe(attempt.time_to_first_token_s)
        if attempt.unused_usage is not None:  # a hedge loser's answer: nobody used it, but it is billed
            _count_billed(
                _deployment(attempt.provider, attempt.model), attempt.unused_usage, attempt.unused_cost_nanos
            )

    def on_completion(
        self, ctx: CallContext, request: ChatRequest, outcome: Completion | StreamFinish, latency_s: float
    ) -> None:
        deployment = outcome.deployment
        if outcome.cache_hit is not None:  # nothing was billed: count what it saved instead
            saved = outcome.cache_hit.saved_cost_nanos
            if saved:
                _saved_cost(deployment.provider, deployment.model).inc(saved)
            return
        d = _deployment(deployment.provider, deployment.model)
        usage = outcome.result.usage if isinstance(outcome, Completion) else outcome.done.usage
        _count_billed(d, usage, outcome.cost_nanos)

    def on_error(self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float) -> None:
        metrics.REQUEST_ERRORS.labels(status_of(error)[1]).inc()


class EventObserver:
    """Publishes one decision, one event per attempt, and one completion or error per request.

    When nothing is eligible the decision is still published (`chosen` empty, every candidate
    with its exclusion reason), then the error. Failures before any decision (unknown model or
    policy) yield only the error event. Invalid requests never reach the engine and publish
    nothing; nor does a retry answered from the request ledger (the first call published).
    """

    def __init__(self, sink: EventSink, *, include_content: bool = False) -> None:
        self._sink = sink
        self._include_content = include_content

    def _publish(self, ctx: CallContext, body: EventBody) -> None:
        # The call context is the events' context: one object per request, shared by its events.
        # No id yet: the encoder draws it in the sender's batch (see TelemetryEvent).
        self._sink.publish(TelemetryEvent(ctx, body, "", time.time()))

    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None:
        self._publish(ctx, DecisionEvent(decision))

    def on_attempt(self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str) -> None:
        self._publish(ctx, AttemptEvent(index, attempt, upstream_model, hedged=attempt.hedged))

    def on_completion(
        self, ctx: CallContext, request: ChatRequest, outcome: Completion | StreamFinish, latency_s: float
    ) -> None:
        if isinstance(outcome, Completion):
            usage, finish = outcome.result.usage, outcome.result.finish_reason
            answer: str | None = outcome.result.message.content
        else:
            # Streamed text is not buffered by the router, so stream completions carry no answer.
            usage, finish, answer = outcome.done.usage, outcome.done.finish_reason, None
        content = self._include_content
        hit = outcome.cache_hit
        body = CompletionEvent(
            provider=outcome.deployment.provider,
            model=outcome.deployment.model,
            usage=usage,
            cost_nanos=outcome.cost_nanos,
            latency_s=latency_s,
            attempt_count=len(outcome.attempts),
            stream=ctx.stream,
            finish_reason=finish,
            cache_hit=hit is not None,
            cost_saved_nanos=0 if hit is None else hit.saved_cost_nanos,
            prompt_text=_prompt_text(request) if content else None,
            completion_text=answer if content else None,
        )
        self._publish(ctx, body)

    def on_error(self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float) -> None:
        code, reason = status_of(error)
        message = str(error) if isinstance(error, RouterError) else reason.lower()
        self._publish(ctx, ErrorEvent(code, reason, message, attempt_count))


class FanOut:
    """Several observers as one (metrics always; events when configured)."""

    def __init__(self, *observers: RequestObserver) -> None:
        self._observers = observers

    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None:
        for o in self._observers:
            o.on_decision(ctx, decision)

    def on_attempt(self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str) -> None:
        for o in self._observers:
            o.on_attempt(ctx, index, attempt, upstream_model)

    def on_completion(
        self, ctx: CallContext, request: ChatRequest, outcome: Completion | StreamFinish, latency_s: float
    ) -> None:
        for o in self._observers:
            o.on_completion(ctx, request, outcome, latency_s)

    def on_error(self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float) -> None:
        for o in self._observers:
            o.on_error(ctx, error, attempt_count, latency_s)


def _count_billed(d: _DeploymentMetrics, usage: Usage, cost_nanos: int) -> None:
    # Zero increments are skipped: each inc takes the metric's lock for nothing.
    if usage.input_tokens:
        d.input_tokens.inc(usage.input_tokens)
    if usage.output_tokens:
        d.output_tokens.inc(usage.output_tokens)
    if usage.cached_input_tokens:
        d.cached_tokens.inc(usage.cached_input_tokens)
    if cost_nanos:
        d.cost.inc(cost_nanos)


def _prompt_text(request: ChatRequest) -> str:
    return "\n".join(f"{m.role.value}: {m.content}" for m in request.messages)
