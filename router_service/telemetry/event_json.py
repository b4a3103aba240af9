"""TelemetryEvent -> the proto3 JSON mapping of router.v1.Event, as compact JSON text.

Why not `json_format.MessageToDict(to_proto(event))`? It walks descriptors in pure Python and
cost 50-200 us per event here, several times the cost of the request's own routing work. Why not
a dict and `json.dumps`? The C encoder still allocates a string per key and value and joins them:
a decision event (6 candidates) cost 7 us to build as a dict plus 30 us to dump, on the router's
one core. So each builder below writes the text directly, one f-string fragment per field (the
field names and order of the mapping), quoting strings with the json module's own C escaper:
about a third of that. The output is exactly what `json.dumps(..., separators=(",", ":"),
ensure_ascii=False)` printed for the equivalent dict.

It is the canonical mapping with every field printed (`always_print_fields_with_no_presence=True`):
lowerCamelCase names, enum names, int64 as JSON strings, RFC 3339 UTC times, optional and message
fields only when set. tests/telemetry hold it equal to MessageToDict for every event kind, so the
two cannot drift apart silently. Adding a field: add its fragment in declaration order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring  # the C escaper (\", \\, control chars; UTF-8 kept)
from typing import Any

from router_service import domain
from router_service.telemetry import wire_values as wv
from router_service.telemetry.events import (
    AttemptEvent,
    CompletionEvent,
    DecisionEvent,
    ErrorEvent,
    EventBody,
    EventContext,
    FeedbackEvent,
    GovernanceEvent,
    TelemetryEvent,
)

_str: Callable[[str], str] = encode_basestring  # a JSON string literal, quotes included


def to_json(event: TelemetryEvent, router_instance: str, event_time: str | None = None) -> str:
    """The event as compact JSON. `event_time`: its RFC 3339 text, when the caller has it already."""
    if event_time is None:
        event_time = wv.rfc3339_of(event.event_time_unix_s)
    return event_to_json(event.context, event.body, event.event_id, event_time, _str(router_instance))


def event_to_json(
    context: EventContext, body: EventBody, event_id: str, event_time: str, quoted_router_instance: str
) -> str:
    """to_json with the parts given apiece, the router instance already a JSON string: what the
    publisher's encoder calls for every event (see RecordEncoder.encode)."""
    return (
        f'{{"eventId":{_str(event_id)}'
        f',"eventTime":"{event_time}"'
        f',"requestId":{_str(context.request_id)}'
        f"{_tracing_and_tenant(context)}"
        f',"tags":{_string_map(context.tags)}'
        f',"routerInstance":{quoted_router_instance}'
        f',"{body.kind}":{_BUILDERS[type(body)](body)}}}'
    )


# Without tracing and keys, these six are empty on every event: one constant then, instead of
# six escaped strings (half of the envelope's 2 us).
_EMPTY_TRACING_AND_TENANT = ',"traceId":"","spanId":"","apiKeyId":"","team":"","customer":"","user":""'


def _tracing_and_tenant(context: EventContext) -> str:
    if not (
        context.trace_id
        or context.span_id
        or context.api_key_id
        or context.team
        or context.customer
        or context.user
    ):
        return _EMPTY_TRACING_AND_TENANT
    return (
        f',"traceId":{_str(context.trace_id)}'
        f',"spanId":{_str(context.span_id)}'
        f',"apiKeyId":{_str(context.api_key_id)}'
        f',"team":{_str(context.team)}'
        f',"customer":{_str(context.customer)}'
        f',"user":{_str(context.user)}'
    )


def _decision(body: DecisionEvent) -> str:
    decision = body.decision
    return (
        f'{{"policy":{_str(decision.policy)}'
        f',"strategy":{_str(decision.strategy)}'
        f',"taskType":"{wv.TASK_TYPE_NAMES[decision.task_type]}"'
        f',"chosen":{_str(decision.chosen)}'
        f',"fallbacks":[{",".join(map(_str, decision.chain[1:]))}]'
        f',"candidates":[{",".join(map(_candidate, decision.candidates))}]'
        f"{_downgrade(decision.downgrade)}}}"
    )


def _downgrade(downgrade: domain.BudgetDowngrade | None) -> str:
    if downgrade is None:
        return ""
    return (
        f',"downgrade":{{"fromPolicy":{_str(downgrade.from_policy)}'
        f',"entity":{_str(downgrade.entity)}'
        f',"reason":{_str(downgrade.reason)}}}'
    )


def _candidate(candidate: domain.CandidateView) -> str:
    units, nanos = wv.money_parts(candidate.estimated_cost_nanos)
    return (
        f'{{"provider":{_str(candidate.provider)}'
        f',"model":{_str(candidate.model)}'
        f',"eligible":{_BOOL[candidate.eligible]}'
        f',"exclusionReason":{_str(candidate.exclusion_reason)}'
        f',"score":{_double(candidate.score)}'
        f',"estimatedCost":{{"currencyCode":"USD","units":"{units:d}","nanos":{nanos:d}}}'
        f',"quality":{_double(candidate.quality)}'
        f',"qualityKnown":{_BOOL[candidate.quality_known]}'
        f',"qualitySd":{_double(candidate.quality_sd)}'
        f',"qualitySamples":{_double(candidate.quality_samples)}'
        f',"exploration":{_BOOL[candidate.exploration]}}}'
    )


def _attempt(body: AttemptEvent) -> str:
    attempt = body.attempt
    text = (
        f'{{"attemptIndex":{body.index:d}'
        f',"provider":{_str(attempt.provider)}'
        f',"model":{_str(attempt.model)}'
        f',"upstreamModel":{_str(body.upstream_model)}'
        f',"outcome":"{_OUTCOME_NAMES[attempt.outcome]}"'
        f',"errorClass":"{_ERROR_CLASS_NAMES.get(attempt.error_class, _ERROR_CLASS_UNSPECIFIED)}"'
        f',"httpStatus":{attempt.http_status:d}'
        f',"latencyMs":"{round(attempt.latency_s * 1000):d}"'
        f',"hedged":{_BOOL[body.hedged]}'
        f',"unusedCostNanosUsd":"{attempt.unused_cost_nanos:d}"'
        f',"routerStalled":{_BOOL[attempt.router_stalled]}'
    )
    if (unused := attempt.unused_usage) is not None:
        text += (
            f',"unusedUsage":{{"inputTokenCount":"{unused.input_tokens:d}"'
            f',"outputTokenCount":"{unused.output_tokens:d}"'
            f',"cachedInputTokenCount":"{unused.cached_input_tokens:d}"}}'
        )
    if attempt.time_to_first_token_s is not None:
        text += f',"timeToFirstTokenMs":"{round(attempt.time_to_first_token_s * 1000):d}"'
    if attempt.retry_after_s is not None:
        text += f',"retryAfterMs":"{round(attempt.retry_after_s * 1000):d}"'
    if attempt.breaker_cooldown_s is not None:
        text += f',"breakerCooldownMs":"{round(attempt.breaker_cooldown_s * 1000):d}"'
    if attempt.started_at_unix_s:
        text += f',"startTime":"{wv.rfc3339_of(attempt.started_at_unix_s)}"'
    return text + "}"


def _completion(body: CompletionEvent) -> str:
    usage = body.usage
    text = (
        f'{{"provider":{_str(body.provider)}'
        f',"model":{_str(body.model)}'
        f',"usage":{{"inputTokenCount":"{usage.input_tokens:d}"'
        f',"outputTokenCount":"{usage.output_tokens:d}"'
        f',"cachedInputTokenCount":"{usage.cached_input_tokens:d}"}}'
        f',"costNanosUsd":"{body.cost_nanos:d}"'
        f',"cacheHit":{_BOOL[body.cache_hit]}'
        f',"costSavedNanosUsd":"{body.cost_saved_nanos:d}"'
        f',"latencyMs":"{round(body.latency_s * 1000):d}"'
        f',"attemptCount":{body.attempt_count:d}'
        f',"stream":{_BOOL[body.stream]}'
        f',"finishReason":"{_FINISH_REASON_NAMES.get(body.finish_reason, _FINISH_REASON_UNSPECIFIED)}"'
    )
    if body.prompt_text is not None:
        text += f',"promptText":{_str(body.prompt_text)}'
    if body.completion_text is not None:
        text += f',"completionText":{_str(body.completion_text)}'
    return text + "}"


def _error(body: ErrorEvent) -> str:
    return (
        f'{{"statusCode":{_str(body.status_code)}'
        f',"reason":{_str(body.reason)}'
        f',"message":{_str(body.message)}'
        f',"attemptCount":{body.attempt_count:d}}}'
    )


def _feedback(body: FeedbackEvent) -> str:
    return (
        f'{{"score":{_double(body.score)},"tags":{_string_map(body.tags)}'
        f',"evaluator":{_BOOL[body.evaluator]}}}'
    )


def _governance(body: GovernanceEvent) -> str:
    text = (
        f'{{"decision":"{wv.GOVERNANCE_DECISION_NAMES[body.decision]}"'
        f',"level":{_str(body.level)}'
        f',"entity":{_str(body.entity)}'
        f',"metric":{_str(body.metric)}'
        f',"limit":"{body.limit:d}"'
        f',"current":"{body.current:d}"'
        f',"asked":"{body.asked:d}"'
        f',"period":{_str(body.period)}'
        f',"reservedCostNanosUsd":"{body.reserved_cost_nanos:d}"'
        f',"reservedTokens":"{body.reserved_tokens:d}"'
        f',"policy":{_str(body.policy)}'
        f',"downgradePolicy":{_str(body.downgrade_policy)}'
        f',"hedge":{_BOOL[body.hedge]}'
    )
    if body.retry_after_s is not None:
        text += f',"retryAfterMs":"{round(body.retry_after_s * 1000):d}"'
    return text + "}"


# Value helpers. Integers go through `:d` so that a stray float fails loudly (an encode_error)
# instead of printing a value the mapping does not allow. The builders above inline the simplest
# conversions (wv.millis is round(s * 1000); enum names are dict lookups): these run for every
# event in the sender's loop, where a Python call costs as much as the work it wraps.

_BOOL = {False: "false", True: "true"}  # also for 0/1: True == 1 hashes alike
_OUTCOME_NAMES = wv.OUTCOME_NAMES
_ERROR_CLASS_NAMES, _ERROR_CLASS_UNSPECIFIED = wv.ERROR_CLASS_NAMES, wv.ERROR_CLASS_UNSPECIFIED
_FINISH_REASON_NAMES, _FINISH_REASON_UNSPECIFIED = wv.FINISH_REASON_NAMES, wv.FINISH_REASON_UNSPECIFIED


def _double(value: float) -> str:
    # The mapping spells non-finite doubles as strings; bare NaN/Infinity would be invalid JSON.
    if math.isfinite(value):
        return repr(float(value))
    return '"NaN"' if math.isnan(value) else ('"Infinity"' if value > 0 else '"-Infinity"')


def _string_map(values: Mapping[str, str]) -> str:
    if not values:
        return "{}"
    return "{" + ",".join(f"{_str(key)}:{_str(value)}" for key, value in values.items()) + "}"


_BUILDERS: dict[type[EventBody], Callable[[Any], str]] = {
    DecisionEvent: _decision,
    AttemptEvent: _attempt,
    CompletionEvent: _completion,
    ErrorEvent: _error,
    FeedbackEvent: _feedback,
    GovernanceEvent: _governance,
}
