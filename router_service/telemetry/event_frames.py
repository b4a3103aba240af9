"""TelemetryEvents <-> frames of plain tuples: how the router hands events to its forwarder process.

The router's sender (forwarding_publisher.py) packs each round of events into one frame and writes
it to the forwarder (forwarder.py), which unpacks it and publishes the events with the ordinary
KafkaPublisher. A frame is `marshal` data: a list of tuples of str, int, float, bool, None and
dict. marshal rather than pickle or JSON because packing runs on the router's busy core, and
marshal writes such values in C with no per-object lookups (a decision event with six candidates
packs in about 2 us); the format only ever travels between two processes of the same
interpreter, which is the one case marshal is made for. The forwarder is the same program, so
the format carries no version.

Event ids. The engine leaves them to the encoder (see TelemetryEvent), which now runs in the
forwarder, off the router's core. But if a forwarder dies after publishing a frame and before
acknowledging it, the router sends the frame again, and the copies must carry the same event_id
so that consumers can drop them. So a frame's ids are drawn from a generator seeded with the
router's random 128-bit `id_seed` and the frame's number: the same frame gets the same ids in
any forwarder, and other frames and routers draw from other seeds (122 random bits an id, as
before).

Each value is flattened in its dataclass's field order. Unpacking builds the event bodies and
read-only views of the domain values in them (see "views" below). tests/telemetry/
test_event_frames.py round-trips events with every field set to a non-default value and holds
the result equal to the original, field by field: a new field that is not carried fails there.
"""

from __future__ import annotations

import marshal
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

from router_service import domain
from router_service.telemetry.events import (
    AttemptEvent,
    CompletionEvent,
    DecisionEvent,
    ErrorEvent,
    EventBody,
    EventContext,
    FeedbackEvent,
    RequestContext,
    TelemetryEvent,
    new_event_id,
)

_Flat = tuple[Any, ...]


def pack(events: Sequence[TelemetryEvent]) -> bytes:
    """One frame of events."""
    contexts: dict[int, _Flat] = {}  # a request's events share its context: flatten it once
    flat = []
    for context, body, event_id, event_time in events:
        ctx = contexts.get(id(context))
        if ctx is None:
            ctx = contexts[id(context)] = _flat_context(context)
        flat.append((ctx, event_id, event_time, _FLATTEN[type(body)](body)))
    return marshal.dumps(flat)


def unpack(frame: bytes, id_seed: int, seq: int) -> list[TelemetryEvent]:
    """The events of frame number `seq`, every id set: those packed without one get the same
    ids whenever this frame is unpacked with the same seed."""
    ids = random.Random((id_seed << 64) | seq)
    events = []
    contexts: dict[int, _Context] = {}
    for ctx, event_id, event_time, (kind, *fields) in marshal.loads(frame):
        context = contexts.get(id(ctx))  # marshal shares the tuple of a repeated context
        if context is None:
            context = contexts[id(ctx)] = _new(_Context, ctx)
        body = _UNFLATTEN[kind](fields)
        events.append(TelemetryEvent(context, body, event_id or new_event_id(ids), event_time))
    return events


# -- views: what unpack builds instead of the frozen domain dataclasses --------------------------
#
# The forwarder only reads these values, to encode them. Building the frozen dataclasses again
# (an object.__setattr__ per field) cost 8.7 us an event, more than encoding it (6.3 us); a
# NamedTuple made from the tuple marshal already returned costs a tenth of that. The views have
# the dataclasses' field names in their order (and the properties the encoders read), so the
# encoders, which only read attributes, cannot tell them apart: `cast` says so to mypy. Tests
# hold each view's fields equal to its dataclass's, and the records encoded from unpacked events
# equal to those encoded from the originals.

_new = tuple.__new__  # a NamedTuple from a tuple in field order, without its Python __new__


class _Context(NamedTuple):  # events.RequestContext (an EventContext)
    request_id: str
    trace_id: str
    span_id: str
    api_key_id: str
    team: str
    customer: str
    user: str
    tags: Mapping[str, str]


class _Candidate(NamedTuple):  # domain.CandidateView
    provider: str
    model: str
    eligible: bool
    exclusion_reason: str
    score: float
    estimated_cost_nanos: int
    quality: float
    quality_known: bool


class _Decision(NamedTuple):  # domain.RouteDecision
    policy: str
    strategy: str
    task_type: domain.TaskType
    chain: tuple[str, ...]
    candidates: tuple[_Candidate, ...]

    @property
    def chosen(self) -> str:
        return self.chain[0] if self.chain else ""


class _Usage(NamedTuple):  # domain.Usage
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int


class _Attempt(NamedTuple):  # domain.AttemptRecord
    provider: str
    model: str
    outcome: domain.AttemptOutcome
    latency_s: float
    error_class: str
    http_status: int
    time_to_first_token_s: float | None
    started_at_unix_s: float
    retry_after_s: float | None
    hedged: bool
    unused_usage: _Usage | None
    unused_cost_nanos: int


VIEWS: dict[type[Any], type[Any]] = {  # for the tests
    RequestContext: _Context,
    domain.CandidateView: _Candidate,
    domain.RouteDecision: _Decision,
    domain.Usage: _Usage,
    domain.AttemptRecord: _Attempt,
}
_TASK_TYPES = {member.value: member for member in domain.TaskType}
_OUTCOMES = {member.value: member for member in domain.AttemptOutcome}
_FINISH_REASONS = {member.value: member for member in domain.FinishReason}


def _flat_context(c: EventContext) -> _Flat:
    tags = c.tags
    return (
        c.request_id,
        c.trace_id,
        c.span_id,
        c.api_key_id,
        c.team,
        c.customer,
        c.user,
        tags if type(tags) is dict else dict(tags),
    )


def _flat_decision(body: DecisionEvent) -> _Flat:
    d = body.decision
    return (
        "decision",
        d.policy,
        d.strategy,
        d.task_type.value,
        d.chain,
        tuple(
            (
                c.provider,
                c.model,
                c.eligible,
                c.exclusion_reason,
                c.score,
                c.estimated_cost_nanos,
                c.quality,
                c.quality_known,
            )
            for c in d.candidates
        ),
    )


def _decision(f: list[Any]) -> DecisionEvent:
    policy, strategy, task_type, chain, candidates = f
    view = _new(
        _Decision,
        (policy, strategy, _TASK_TYPES[task_type], chain, tuple([_new(_Candidate, c) for c in candidates])),
    )
    return DecisionEvent(cast(domain.RouteDecision, view))


def _flat_attempt(body: AttemptEvent) -> _Flat:
    a = body.attempt
    unused = a.unused_usage
    return (
        "attempt",
        body.index,
        (
            a.provider,
            a.model,
            a.outcome.value,
            a.latency_s,
            a.error_class,
            a.http_status,
            a.time_to_first_token_s,
            a.started_at_unix_s,
            a.retry_after_s,
            a.hedged,
            None if unused is None else _flat_usage(unused),
            a.unused_cost_nanos,
        ),
        body.upstream_model,
        body.hedged,
    )


def _attempt(f: list[Any]) -> AttemptEvent:
    index, record, upstream_model, hedged = f
    (provider, model, outcome, latency_s, error_class, http_status, ttft_s, started_at, retry_after_s,
     record_hedged, unused, unused_cost_nanos) = record  # fmt: skip
    view = _new(
        _Attempt,
        (
            provider,
            model,
            _OUTCOMES[outcome],
            latency_s,
            error_class,
            http_status,
            ttft_s,
            started_at,
            retry_after_s,
            record_hedged,
            None if unused is None else _new(_Usage, unused),
            unused_cost_nanos,
        ),
    )
    return AttemptEvent(index, cast(domain.AttemptRecord, view), upstream_model, hedged)


def _flat_usage(u: domain.Usage) -> _Flat:
    return (u.input_tokens, u.output_tokens, u.cached_input_tokens)


def _flat_completion(b: CompletionEvent) -> _Flat:
    return (
        "completion",
        b.provider,
        b.model,
        _flat_usage(b.usage),
        b.cost_nanos,
        b.latency_s,
        b.attempt_count,
        b.stream,
        b.finish_reason.value,
        b.cache_hit,
        b.cost_saved_nanos,
        b.prompt_text,
        b.completion_text,
    )


def _completion(f: list[Any]) -> CompletionEvent:
    provider, model, usage, cost, latency, attempts, stream, finish, cache_hit, saved, prompt, answer = f
    return CompletionEvent(
        provider,
        model,
        cast(domain.Usage, _new(_Usage, usage)),
        cost,
        latency,
        attempts,
        stream,
        _FINISH_REASONS[finish],
        cache_hit,
        saved,
        prompt,
        answer,
    )


def _flat_error(b: ErrorEvent) -> _Flat:
    return ("error", b.status_code, b.reason, b.message, b.attempt_count)


def _flat_feedback(b: FeedbackEvent) -> _Flat:
    tags = b.tags
    return ("feedback", b.score, tags if type(tags) is dict else dict(tags), b.evaluator)


_FLATTEN: dict[type[Any], Callable[[Any], _Flat]] = {
    DecisionEvent: _flat_decision,
    AttemptEvent: _flat_attempt,
    CompletionEvent: _flat_completion,
    ErrorEvent: _flat_error,
    FeedbackEvent: _flat_feedback,
}
_UNFLATTEN: dict[str, Callable[[list[Any]], EventBody]] = {
    "decision": _decision,
    "attempt": _attempt,
    "completion": _completion,
    "error": lambda f: ErrorEvent(*f),
    "feedback": lambda f: FeedbackEvent(*f),
}
