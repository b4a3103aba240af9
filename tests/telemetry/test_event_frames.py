"""Frames carry every event exactly: each field of each body, its context, id and time."""

from __future__ import annotations

import dataclasses
import types
import uuid
from typing import Any

import pytest

from router_service import domain
from router_service.call import CallContext
from router_service.identity.model import Identity
from router_service.telemetry import event_codec as codec
from router_service.telemetry import event_frames
from router_service.telemetry import events as ev
from tests.telemetry import helpers as h


def _full_attempt() -> ev.AttemptEvent:
    record = domain.AttemptRecord(
        provider="openai",
        model="gpt-4o-mini",
        outcome=domain.AttemptOutcome.CANCELLED,
        latency_s=0.4321,
        error_class="cancelled",
        http_status=499,
        time_to_first_token_s=0.125,
        started_at_unix_s=h.NOW - 1.5,
        retry_after_s=2.5,
        hedged=True,
        unused_usage=domain.Usage(120, 30, 100),
        unused_cost_nanos=98_765,
    )
    return ev.AttemptEvent(2, record, "gpt-4o-mini-2024-07-18", hedged=True)


def _full_completion() -> ev.CompletionEvent:
    return h.completion(
        finish_reason=domain.FinishReason.LENGTH,
        cache_hit=True,
        cost_saved_nanos=12_345,
        prompt_text="hi ✓",
        completion_text="hello",
    )


def _full_decision() -> ev.DecisionEvent:
    every_field = domain.CandidateView(
        "big", "ctx-small", False, "context window 8192 < 12000", 0.25, 77, 0.8, True
    )
    decision = h.decision()
    return ev.DecisionEvent(dataclasses.replace(decision, candidates=(every_field, *decision.candidates)))


SEED = 0x0123456789ABCDEF0123456789ABCDEF

FULL_BODIES: dict[str, ev.EventBody] = {
    "decision": _full_decision(),
    "attempt": _full_attempt(),
    "completion": _full_completion(),
    "error": ev.ErrorEvent("UNAVAILABLE", "ALL_UPSTREAMS_FAILED", "every upstream failed", 3),
    "feedback": ev.FeedbackEvent(0.75, {"source": "thumbs"}, evaluator=True),
}


def _defaulted_fields(value: Any, path: str) -> list[str]:
    """Dataclass fields (recursively) still holding their default: a round trip would not test them."""
    found: list[str] = []
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            found += _defaulted_fields(item, f"{path}[{i}]")
    if not dataclasses.is_dataclass(value):
        return found
    for f in dataclasses.fields(value):
        field_value = getattr(value, f.name)
        if f.default is not dataclasses.MISSING and field_value == f.default:
            found.append(f"{path}.{f.name}")
        if f.default_factory is not dataclasses.MISSING and field_value == f.default_factory():
            found.append(f"{path}.{f.name}")
        found += _defaulted_fields(field_value, f"{path}.{f.name}")
    return found


@pytest.mark.parametrize("kind", list(FULL_BODIES))
def test_the_samples_set_every_field_of_every_body(kind: str) -> None:
    body = FULL_BODIES[kind]
    if isinstance(body, ev.DecisionEvent):  # the first candidate sets every field; the others need not
        body = ev.DecisionEvent(dataclasses.replace(body.decision, candidates=body.decision.candidates[:1]))
    assert _defaulted_fields(body, kind) == []


def _fields(value: Any) -> Any:
    """A value as (field name, value) pairs, recursively. A domain dataclass and the view unpack
    builds for it (a NamedTuple) give the same pairs when every field has the same name, position
    and value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple((f.name, _fields(getattr(value, f.name))) for f in dataclasses.fields(value))
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return tuple((name, _fields(getattr(value, name))) for name in value._fields)
    if isinstance(value, tuple):
        return tuple(_fields(item) for item in value)
    return value


@pytest.mark.parametrize("kind", list(FULL_BODIES))
def test_every_kind_round_trips_field_for_field(kind: str) -> None:
    event = ev.TelemetryEvent.create(h.context(), FULL_BODIES[kind], now_unix_s=h.NOW)

    [back] = event_frames.unpack(event_frames.pack([event]), SEED, 1)

    assert type(back.body) is type(event.body)
    assert _fields(back.body) == _fields(event.body)
    assert back.event_id == event.event_id
    assert back.event_time_unix_s == event.event_time_unix_s
    assert _fields(back.context) == _fields(event.context)


@pytest.mark.parametrize("domain_type", list(event_frames.VIEWS))
def test_each_view_has_its_dataclass_fields_in_order(domain_type: type[Any]) -> None:
    view = event_frames.VIEWS[domain_type]
    assert view._fields == tuple(f.name for f in dataclasses.fields(domain_type))


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
@pytest.mark.parametrize("kind", list(FULL_BODIES))
def test_the_forwarder_encodes_the_same_record_the_router_would(kind: str, encoding: codec.Encoding) -> None:
    event = ev.TelemetryEvent.create(h.context(), FULL_BODIES[kind], now_unix_s=h.NOW)

    [back] = event_frames.unpack(event_frames.pack([event]), SEED, 1)

    assert codec.encode(back, encoding, router_instance="host-1") == codec.encode(
        event, encoding, router_instance="host-1"
    )


def test_an_engine_call_context_arrives_with_the_same_facts() -> None:
    call = CallContext(
        "req-9",
        deadline=1.0,
        tags=types.MappingProxyType({"feature": "chat"}),
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        identity=Identity(key_id="k_search", team="search", customer="acme", user="u-42"),
    )
    events = [ev.TelemetryEvent(call, body, "", h.NOW) for body in FULL_BODIES.values()]

    back = event_frames.unpack(event_frames.pack(events), SEED, 1)

    assert {id(e.context) for e in back} == {id(back[0].context)}  # still one context per request
    assert _fields(back[0].context) == _fields(
        ev.RequestContext(
            request_id="req-9",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
            span_id="00f067aa0ba902b7",
            api_key_id="k_search",
            team="search",
            customer="acme",
            user="u-42",
            tags={"feature": "chat"},
        )
    )


def test_ids_are_kept_or_drawn_the_same_whenever_a_frame_is_unpacked() -> None:
    given = h.event(FULL_BODIES["error"])
    idless = [ev.TelemetryEvent(h.context(), FULL_BODIES["error"], "", h.NOW) for _ in range(3)]
    frame = event_frames.pack([given, *idless])

    first = event_frames.unpack(frame, SEED, 7)
    resent = event_frames.unpack(frame, SEED, 7)  # a frame sent again, to another forwarder
    next_frame = event_frames.unpack(frame, SEED, 8)
    other_router = event_frames.unpack(frame, SEED + 1, 7)

    assert first[0].event_id == given.event_id
    drawn = [e.event_id for e in first[1:]]
    assert all(uuid.UUID(i).version == 4 for i in drawn) and len(set(drawn)) == 3
    assert [e.event_id for e in resent] == [e.event_id for e in first]
    assert not set(drawn) & {e.event_id for e in next_frame[1:] + other_router[1:]}


def test_an_empty_frame_is_an_empty_list() -> None:
    assert event_frames.unpack(event_frames.pack([]), SEED, 1) == []
