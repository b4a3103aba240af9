"""The engine's RequestObserver: turns request steps into Prometheus metrics and Kafka events.

Called on the request path, so every method is synchronous and cheap: metric updates and a
non-blocking hand-off to the event sink.
"""

from __future__ import annotations

import asyncio

from router_service.domain import AttemptOutcome, AttemptRecord, RouteDecision
from router_service.engine import CallContext, Completion, StreamFinish
from router_service.errors import RouterError
from router_service.telemetry import metrics


class MetricsObserver:
    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None:
        metrics.DECISIONS.labels(decision.policy, decision.strategy).inc()

    def on_attempt(self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str) -> None:
        provider, model = attempt.provider, attempt.model
        metrics.UPSTREAM_ATTEMPTS.labels(provider, model, attempt.outcome.value, attempt.error_class).inc()
        metrics.UPSTREAM_DURATION.labels(provider, model, attempt.outcome.value).observe(attempt.latency_s)
        if attempt.outcome is AttemptOutcome.SUCCESS and attempt.time_to_first_token_s is not None:
            metrics.UPSTREAM_TTFT.labels(provider, model).observe(attempt.time_to_first_token_s)

    def on_completion(self, ctx: CallContext, outcome: Completion | StreamFinish, latency_s: float) -> None:
        d = outcome.deployment
        usage = outcome.result.usage if isinstance(outcome, Completion) else outcome.done.usage
        metrics.TOKENS.labels(d.provider, d.model, "input").inc(usage.input_tokens)
        metrics.TOKENS.labels(d.provider, d.model, "output").inc(usage.output_tokens)
        metrics.TOKENS.labels(d.provider, d.model, "cached_input").inc(usage.cached_input_tokens)
        metrics.COST.labels(d.provider, d.model).inc(outcome.cost_nanos)

    def on_error(self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float) -> None:
        reason = (
            error.reason
            if isinstance(error, RouterError)
            else "CANCELLED"
            if _is_cancel(error)
            else "INTERNAL"
        )
        metrics.REQUEST_ERRORS.labels(reason).inc()


def _is_cancel(error: BaseException) -> bool:
    return isinstance(error, (asyncio.CancelledError, GeneratorExit))
