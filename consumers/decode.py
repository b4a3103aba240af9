"""Kafka record value -> consumers.events.Event, fast for the router's JSON, exact for the rest.

The router prints `router.v1.Event` in the proto3 JSON mapping with every field present
(lowerCamelCase names, enum names, int64 as strings, RFC 3339 "Z" times). The fast path reads
that dict directly. Anything it does not expect (a missing field, snake_case names, numeric enums,
a time offset...) is not guessed at: the record goes to the canonical parser,
`router_contract.event_records.decode`, which also handles protobuf values. Only what the
canonical parser rejects is undecodable (DecodeError), so a third-party producer using another
valid spelling of the mapping is still read correctly, just more slowly.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from consumers.events import Attempt, Body, Completion, Decision, Envelope, Event, Feedback, Governance
from router_contract import event_records
from router_contract._gen.router.v1 import events_pb2

Headers = Sequence[tuple[str, bytes]]

_JSON_CONTENT_TYPE = b"application/json"
# Anything the fast path may hit on an unexpected shape; the canonical parser then decides.
_SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


class DecodeError(Exception):
    """The record is not a router.v1.Event in any encoding we read."""


def decode(value: bytes | None, headers: Headers) -> Event | None:
    """The record's event, or None when its body is a kind no aggregator reads (error events)."""
    if value is None:
        raise DecodeError("record has no value")
    if _content_type(headers) in (None, _JSON_CONTENT_TYPE):
        try:
            return _from_json(json.loads(value))
        except _SHAPE_ERRORS:
            pass  # not the router's usual spelling: let the canonical parser judge it
    try:
        message = event_records.decode(value, headers)
    except Exception as exc:  # the protobuf/json parsers raise many types; all mean "bad record"
        raise DecodeError(f"undecodable event: {exc}") from exc
    return _from_proto(message)


def _content_type(headers: Headers) -> bytes | None:
    for name, value in headers:
        if name == "content-type":
            return value
    return None


# --- the fast path: the router's proto3 JSON, read as a dict ----------------------------------


def _from_json(data: dict[str, Any]) -> Event | None:
    for kind, reader in _JSON_BODIES.items():
        body_json = data.get(kind)
        if body_json is not None:
            return Event(_envelope_from_json(data), reader(body_json))
    if "error" in data:
        return None
    raise KeyError("no event body")


def _envelope_from_json(data: dict[str, Any]) -> Envelope:
    tags = data["tags"]
    if not isinstance(tags, dict):
        raise TypeError("tags")
    return Envelope(
        event_id=_text(data, "eventId"),
        event_time_s=_rfc3339_z(data["eventTime"]),
        request_id=_text(data, "requestId"),
        api_key_id=_text(data, "apiKeyId"),
        team=_text(data, "team"),
        customer=_text(data, "customer"),
        user=_text(data, "user") if "user" in data else "",  # older events lack it
        router_instance=_text(data, "routerInstance") if "routerInstance" in data else "",
        tags=tags,
    )


def _decision_from_json(data: dict[str, Any]) -> Decision:
    return Decision(task_type=_enum(data["taskType"], "TASK_TYPE_"), chosen=_text(data, "chosen"))


def _attempt_from_json(data: dict[str, Any]) -> Attempt:
    ttft = data.get("timeToFirstTokenMs")
    cooldown = data.get("breakerCooldownMs")
    unused = data.get("unusedUsage") or {}  # a message field: absent unless set
    return Attempt(
        provider=_text(data, "provider"),
        model=_text(data, "model"),
        outcome=_enum(data["outcome"], "ATTEMPT_OUTCOME_"),
        error_class=_enum(data["errorClass"], "ERROR_CLASS_"),
        latency_ms=int(data["latencyMs"]),
        ttft_ms=None if ttft is None else int(ttft),
        unused_input_tokens=int(unused.get("inputTokenCount", 0)),
        unused_output_tokens=int(unused.get("outputTokenCount", 0)),
        unused_cached_input_tokens=int(unused.get("cachedInputTokenCount", 0)),
        # Absent in events written before the field existed (so is routerStalled).
        unused_cost_nanos_usd=int(data.get("unusedCostNanosUsd", 0)),
        breaker_cooldown_ms=None if cooldown is None else int(cooldown),
        router_stalled=_flag(data, "routerStalled") if "routerStalled" in data else False,
    )


def _completion_from_json(data: dict[str, Any]) -> Completion:
    usage = data["usage"]
    return Completion(
        provider=_text(data, "provider"),
        model=_text(data, "model"),
        input_tokens=int(usage["inputTokenCount"]),
        output_tokens=int(usage["outputTokenCount"]),
        cached_input_tokens=int(usage["cachedInputTokenCount"]),
        cost_nanos_usd=int(data["costNanosUsd"]),
        cost_saved_nanos_usd=int(data["costSavedNanosUsd"]),
        cache_hit=_flag(data, "cacheHit"),
    )


def _feedback_from_json(data: dict[str, Any]) -> Feedback:
    score = data["score"]
    if isinstance(score, bool) or not isinstance(score, int | float | str):
        raise TypeError("score")
    # float("NaN") as the mapping spells it; aggregators reject it
    return Feedback(score=float(score), evaluator=_flag(data, "evaluator"))


def _governance_from_json(data: dict[str, Any]) -> Governance:
    return Governance(
        decision=_enum(data["decision"], "GOVERNANCE_DECISION_"),
        level=_text(data, "level"),
        entity=_text(data, "entity"),
        metric=_text(data, "metric"),
        limit=int(data["limit"]),
        current=int(data["current"]),
        asked=int(data["asked"]),
        reserved_cost_nanos_usd=int(data["reservedCostNanosUsd"]),
        reserved_tokens=int(data["reservedTokens"]),
        downgrade_policy=_text(data, "downgradePolicy"),
        hedge=_flag(data, "hedge"),
    )


_JSON_BODIES: dict[str, Callable[[dict[str, Any]], Body]] = {
    "decision": _decision_from_json,
    "attempt": _attempt_from_json,
    "completion": _completion_from_json,
    "feedback": _feedback_from_json,
    "governance": _governance_from_json,
}


def _text(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TypeError(name)
    return value


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data[name]
    if not isinstance(value, bool):
        raise TypeError(name)
    return value


def _enum(value: Any, prefix: str) -> str:
    if not isinstance(value, str) or not value.startswith(prefix):
        raise ValueError(f"not a {prefix}* enum name: {value!r}")  # numbers go the canonical way
    return value[len(prefix) :].lower()


def _rfc3339_z(value: Any) -> float:
    # The mapping prints UTC with "Z"; other offsets are valid RFC 3339 but left to the canonical path.
    if not isinstance(value, str) or not value.endswith("Z"):
        raise ValueError("eventTime")
    return dt.datetime.fromisoformat(value).timestamp()


# --- the canonical path: a parsed protobuf message ----------------------------------------------


def _enum_names(message: Any, field: str, prefix: str) -> Mapping[int, str]:
    enum_type = message.DESCRIPTOR.fields_by_name[field].enum_type
    return {value.number: value.name[len(prefix) :].lower() for value in enum_type.values}


_TASK_TYPES = _enum_names(events_pb2.DecisionEvent, "task_type", "TASK_TYPE_")
_OUTCOMES = _enum_names(events_pb2.AttemptEvent, "outcome", "ATTEMPT_OUTCOME_")
_ERROR_CLASSES = _enum_names(events_pb2.AttemptEvent, "error_class", "ERROR_CLASS_")
_GOVERNANCE_DECISIONS = _enum_names(events_pb2.GovernanceEvent, "decision", "GOVERNANCE_DECISION_")


def _from_proto(message: events_pb2.Event) -> Event | None:
    which = message.WhichOneof("body")
    body: Body
    if which == "decision":
        decision = message.decision
        body = Decision(_TASK_TYPES.get(decision.task_type, "unspecified"), decision.chosen)
    elif which == "attempt":
        body = _attempt_from_proto(message.attempt)
    elif which == "completion":
        body = _completion_from_proto(message.completion)
    elif which == "feedback":
        body = Feedback(message.feedback.score, message.feedback.evaluator)
    elif which == "governance":
        body = _governance_from_proto(message.governance)
    elif which == "error":
        return None
    else:
        raise DecodeError("event has no body")
    return Event(_envelope_from_proto(message), body)


def _envelope_from_proto(message: events_pb2.Event) -> Envelope:
    return Envelope(
        event_id=message.event_id,
        event_time_s=message.event_time.seconds + message.event_time.nanos / 1e9,
        request_id=message.request_id,
        api_key_id=message.api_key_id,
        team=message.team,
        customer=message.customer,
        user=message.user,
        router_instance=message.router_instance,
        tags=dict(message.tags),
    )


def _attempt_from_proto(attempt: events_pb2.AttemptEvent) -> Attempt:
    return Attempt(
        provider=attempt.provider,
        model=attempt.model,
        outcome=_OUTCOMES.get(attempt.outcome, "unspecified"),
        error_class=_ERROR_CLASSES.get(attempt.error_class, "unspecified"),
        latency_ms=attempt.latency_ms,
        ttft_ms=attempt.time_to_first_token_ms if attempt.HasField("time_to_first_token_ms") else None,
        unused_input_tokens=attempt.unused_usage.input_token_count,
        unused_output_tokens=attempt.unused_usage.output_token_count,
        unused_cached_input_tokens=attempt.unused_usage.cached_input_token_count,
        unused_cost_nanos_usd=attempt.unused_cost_nanos_usd,
        breaker_cooldown_ms=attempt.breaker_cooldown_ms if attempt.HasField("breaker_cooldown_ms") else None,
        router_stalled=attempt.router_stalled,
    )


def _completion_from_proto(completion: events_pb2.CompletionEvent) -> Completion:
    usage = completion.usage
    return Completion(
        provider=completion.provider,
        model=completion.model,
        input_tokens=usage.input_token_count,
        output_tokens=usage.output_token_count,
        cached_input_tokens=usage.cached_input_token_count,
        cost_nanos_usd=completion.cost_nanos_usd,
        cost_saved_nanos_usd=completion.cost_saved_nanos_usd,
        cache_hit=completion.cache_hit,
    )


def _governance_from_proto(g: events_pb2.GovernanceEvent) -> Governance:
    return Governance(
        decision=_GOVERNANCE_DECISIONS.get(g.decision, "unspecified"),
        level=g.level,
        entity=g.entity,
        metric=g.metric,
        limit=g.limit,
        current=g.current,
        asked=g.asked,
        reserved_cost_nanos_usd=g.reserved_cost_nanos_usd,
        reserved_tokens=g.reserved_tokens,
        downgrade_policy=g.downgrade_policy,
        hedge=g.hedge,
    )
