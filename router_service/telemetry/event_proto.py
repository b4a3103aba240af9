"""TelemetryEvent -> router.v1.Event (the generated protobuf message).

Used for the protobuf encoding and by consumers/tests; the JSON encoding has its own faster
builder (event_json.py) that tests hold equal to `json_format.MessageToDict` of this message.

Written for the publisher's hot path: repeated messages are filled in place with `add()` (building
each candidate as its own message and copying it in cost twice as much), and enum numbers come
from tables built once rather than from `EnumTypeWrapper.Value()` per event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from router_contract._gen.router.v1 import events_pb2, router_pb2
from router_service import domain
from router_service.telemetry import wire_values as wv
from router_service.telemetry.events import (
    AttemptEvent,
    CompletionEvent,
    DecisionEvent,
    ErrorEvent,
    EventBody,
    FeedbackEvent,
    GovernanceEvent,
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
        user=context.user,
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
    out.task_type = _TASK_TYPES[decision.task_type]
    out.chosen = decision.chosen
    out.fallbacks.extend(decision.chain[1:])
    for candidate in decision.candidates:
        _write_candidate(out.candidates.add(), candidate)
    if (downgrade := decision.downgrade) is not None:
        out.downgrade.from_policy = downgrade.from_policy
        out.downgrade.entity = downgrade.entity
        out.downgrade.reason = downgrade.reason


def _write_candidate(out: router_pb2.Candidate, candidate: domain.CandidateView) -> None:
    out.provider = candidate.provider
    out.model = candidate.model
    out.eligible = candidate.eligible
    out.exclusion_reason = candidate.exclusion_reason
    out.score = candidate.score
    out.quality = candidate.quality
    out.quality_known = candidate.quality_known
    out.quality_sd = candidate.quality_sd
    out.quality_samples = candidate.quality_samples
    out.exploration = candidate.exploration
    cost = out.estimated_cost
    cost.currency_code = "USD"
    cost.units, cost.nanos = wv.money_parts(candidate.estimated_cost_nanos)


def _write_attempt(message: events_pb2.Event, body: AttemptEvent) -> None:
    attempt = body.attempt
    out = message.attempt
    out.SetInParent()
    out.attempt_index = body.index
    out.provider = attempt.provider
    out.model = attempt.model
    out.upstream_model = body.upstream_model
    out.outcome = _OUTCOMES[attempt.outcome]
    out.error_class = router_pb2.ErrorClass.Value(wv.error_class_name(attempt.error_class))
    out.http_status = attempt.http_status
    out.latency_ms = wv.millis(attempt.latency_s)
    out.hedged = body.hedged
    out.unused_cost_nanos_usd = attempt.unused_cost_nanos
    out.router_stalled = attempt.router_stalled
    if (unused := attempt.unused_usage) is not None:
        usage = out.unused_usage
        usage.SetInParent()  # set even when every count is zero
        usage.input_token_count = unused.input_tokens
        usage.output_token_count = unused.output_tokens
        usage.cached_input_token_count = unused.cached_input_tokens
    if attempt.time_to_first_token_s is not None:
        out.time_to_first_token_ms = wv.millis(attempt.time_to_first_token_s)
    if attempt.retry_after_s is not None:
        out.retry_after_ms = wv.millis(attempt.retry_after_s)
    if attempt.breaker_cooldown_s is not None:
        out.breaker_cooldown_ms = wv.millis(attempt.breaker_cooldown_s)
    if attempt.started_at_unix_s:
        out.start_time.seconds, out.start_time.nanos = wv.split_time(attempt.started_at_unix_s)


def _write_completion(message: events_pb2.Event, body: CompletionEvent) -> None:
    out = message.completion
    out.SetInParent()
    out.provider = body.provider
    out.model = body.model
    usage = out.usage
    usage.SetInParent()  # set even when every count is zero
    usage.input_token_count = body.usage.input_tokens
    usage.output_token_count = body.usage.output_tokens
    usage.cached_input_token_count = body.usage.cached_input_tokens
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
    message.feedback.evaluator = body.evaluator


def _write_governance(message: events_pb2.Event, body: GovernanceEvent) -> None:
    out = message.governance
    out.SetInParent()
    out.decision = _GOVERNANCE_DECISIONS[body.decision]
    out.level = body.level
    out.entity = body.entity
    out.metric = body.metric
    out.limit = body.limit
    out.current = body.current
    out.asked = body.asked
    out.period = body.period
    out.reserved_cost_nanos_usd = body.reserved_cost_nanos
    out.reserved_tokens = body.reserved_tokens
    out.policy = body.policy
    out.downgrade_policy = body.downgrade_policy
    out.hedge = body.hedge
    if body.retry_after_s is not None:
        out.retry_after_ms = wv.millis(body.retry_after_s)


_GOVERNANCE_DECISIONS = {
    name: events_pb2.GovernanceDecision.Value(wv.GOVERNANCE_DECISION_NAMES[name])
    for name in wv.GOVERNANCE_DECISION_NAMES
}
_TASK_TYPES = {member: router_pb2.TaskType.Value(name) for member, name in wv.TASK_TYPE_NAMES.items()}
_OUTCOMES = {member: router_pb2.AttemptOutcome.Value(name) for member, name in wv.OUTCOME_NAMES.items()}


# One writer per body type: a new event kind is one dataclass, one message, one writer here and
# one builder in event_json.py.
_WRITERS: dict[type[EventBody], Callable[[events_pb2.Event, Any], None]] = {
    DecisionEvent: _write_decision,
    AttemptEvent: _write_attempt,
    CompletionEvent: _write_completion,
    ErrorEvent: _write_error,
    FeedbackEvent: _write_feedback,
    GovernanceEvent: _write_governance,
}
