"""TelemetryEvent -> router.v1.Event (the generated protobuf message).

Used for the protobuf encoding and by consumers/tests; the JSON encoding has its own faster
builder (event_json.py) that tests hold equal to `json_format.MessageToDict` of this message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.type import money_pb2

from router_service import domain
from router_service._gen.router.v1 import events_pb2, router_pb2
from router_service.telemetry import wire_values as wv
from router_service.telemetry.events import (
    AttemptEvent,
    CompletionEvent,
    DecisionEvent,
    ErrorEvent,
    EventBody,
    FeedbackEvent,
    TelemetryEvent,
)


def to_proto(event: TelemetryEvent, router_instance: str) -> events_pb2.Event:
    context = event.context
    seconds, nanos = wv.split_time(event.event_time_unix_s)
    message = events_pb2.Event(
        event_id=event.event_id,
        request_id=context.request_id,
        trace_id=context.trace_id,
        span_id=context.span_id,
        api_key_id=context.api_key_id,
        team=context.team,
        customer=context.customer,
        tags=dict(context.tags),
        router_instance=router_instance,
    )
    message.event_time.seconds, message.event_time.nanos = seconds, nanos
    _WRITERS[type(event.body)](message, event.body)
    return message


def _write_decision(message: events_pb2.Event, body: DecisionEvent) -> None:
    decision = body.decision
    out = message.decision
    out.SetInParent()
    out.policy = decision.policy
    out.strategy = decision.strategy
    out.task_type = router_pb2.TaskType.Value(wv.TASK_TYPE_NAMES[decision.task_type])
    out.chosen = decision.chosen
    out.fallbacks.extend(decision.chain[1:])
    out.candidates.extend(_candidate(candidate) for candidate in decision.candidates)


def _candidate(candidate: domain.CandidateView) -> router_pb2.Candidate:
    units, nanos = wv.money_parts(candidate.estimated_cost_nanos)
    return router_pb2.Candidate(
        provider=candidate.provider,
        model=candidate.model,
        eligible=candidate.eligible,
        exclusion_reason=candidate.exclusion_reason,
        score=candidate.score,
        estimated_cost=money_pb2.Money(currency_code="USD", units=units, nanos=nanos),
    )


def _write_attempt(message: events_pb2.Event, body: AttemptEvent) -> None:
    attempt = body.attempt
    out = message.attempt
    out.SetInParent()
    out.attempt_index = body.index
    out.provider = attempt.provider
    out.model = attempt.model
    out.upstream_model = body.upstream_model
    out.outcome = router_pb2.AttemptOutcome.Value(wv.OUTCOME_NAMES[attempt.outcome])
    out.error_class = router_pb2.ErrorClass.Value(wv.error_class_name(attempt.error_class))
    out.http_status = attempt.http_status
    out.latency_ms = wv.millis(attempt.latency_s)
    out.hedged = body.hedged
    if attempt.time_to_first_token_s is not None:
        out.time_to_first_token_ms = wv.millis(attempt.time_to_first_token_s)
    if attempt.retry_after_s is not None:
        out.retry_after_ms = wv.millis(attempt.retry_after_s)
    if attempt.started_at_unix_s:
        out.start_time.seconds, out.start_time.nanos = wv.split_time(attempt.started_at_unix_s)


def _write_completion(message: events_pb2.Event, body: CompletionEvent) -> None:
    out = message.completion
    out.SetInParent()
    out.provider = body.provider
    out.model = body.model
    out.usage.CopyFrom(
        router_pb2.Usage(
            input_token_count=body.usage.input_tokens,
            output_token_count=body.usage.output_tokens,
            cached_input_token_count=body.usage.cached_input_tokens,
        )
    )
    out.cost_nanos_usd = body.cost_nanos
    out.cache_hit = body.cache_hit
    out.cost_saved_nanos_usd = body.cost_saved_nanos
    out.latency_ms = wv.millis(body.latency_s)
    out.attempt_count = body.attempt_count
    out.stream = body.stream
    out.finish_reason = router_pb2.FinishReason.Value(wv.finish_reason_name(body.finish_reason))
    if body.prompt_text is not None:
        out.prompt_text = body.prompt_text
    if body.completion_text is not None:
        out.completion_text = body.completion_text


def _write_error(message: events_pb2.Event, body: ErrorEvent) -> None:
    out = message.error
    out.SetInParent()
    out.status_code = body.status_code
    out.reason = body.reason
    out.message = body.message
    out.attempt_count = body.attempt_count


def _write_feedback(message: events_pb2.Event, body: FeedbackEvent) -> None:
    message.feedback.SetInParent()
    message.feedback.score = body.score
    message.feedback.tags.update(body.tags)


# One writer per body type: a new event kind is one dataclass, one message, one writer here and
# one builder in event_json.py.
_WRITERS: dict[type[EventBody], Callable[[events_pb2.Event, Any], None]] = {
    DecisionEvent: _write_decision,
    AttemptEvent: _write_attempt,
    CompletionEvent: _write_completion,
    ErrorEvent: _write_error,
    FeedbackEvent: _write_feedback,
}
