"""The engine's RequestObserver: turns request steps into Prometheus metrics (and events).

Called on the request path, so every method is synchronous and cheap: labelled metric children
are resolved once per deployment (a `labels()` call takes a lock and a dict lookup each time).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from router_service.domain import AttemptOutcome, AttemptRecord, RouteDecision
from router_service.engine import CallContext, Completion, StreamFinish
from router_service.errors import RouterError
from router_service.telemetry import metrics


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
def _attempt_children(provider: str, model: str, outcome: str, error_class: str) -> tuple[Counter, Histogram]:
    return (
        metrics.UPSTREAM_ATTEMPTS.labels(provider, model, outcome, error_class),
        metrics.UPSTREAM_DURATION.labels(provider, model, outcome),
    )


class MetricsObserver:
    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None:
        metrics.DECISIONS.labels(decision.policy, decision.strategy).inc()

    def on_attempt(self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str) -> None:
        count, duration = _attempt_children(
            attempt.provider, attempt.model, attempt.outcome.value, attempt.error_class
        )
        count.inc()
        duration.observe(attempt.latency_s)
        if attempt.outcome is AttemptOutcome.SUCCESS and attempt.time_to_first_token_s is not None:
            _deployment(attempt.provider, attempt.model).ttft.observe(attempt.time_to_first_token_s)

    def on_completion(self, ctx: CallContext, outcome: Completion | StreamFinish, latency_s: float) -> None:
        d = _deployment(outcome.deployment.provider, outcome.deployment.model)
        usage = outcome.result.usage if isinstance(outcome, Completion) else outcome.done.usage
        d.input_tokens.inc(usage.input_tokens)
        d.output_tokens.inc(usage.output_tokens)
        d.cached_tokens.inc(usage.cached_input_tokens)
        d.cost.inc(outcome.cost_nanos)

    def on_error(self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float) -> None:
        metrics.REQUEST_ERRORS.labels(_error_reason(error)).inc()


def _error_reason(error: BaseException) -> str:
    if isinstance(error, RouterError):
        return error.reason
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        return "CANCELLED"
    return "INTERNAL"
