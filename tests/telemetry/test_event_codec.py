from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid

import pytest
from google.protobuf import json_format

from router_contract._gen.router.v1 import events_pb2, router_pb2
from router_service import domain
from router_service.errors import ErrorClass
from router_service.telemetry import event_codec as codec
from router_service.telemetry import events as ev
from router_service.telemetry import wire_values as wv
from tests.telemetry import helpers as h

KINDS = list(h.bodies())


def sample(kind: str) -> ev.TelemetryEvent:
    return h.event(h.bodies()[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_json_value_is_the_canonical_proto3_json_mapping(kind: str) -> None:
    event = sample(kind)
    _, value, _ = codec.encode(event, "json", router_instance="host-1")

    canonical = json_format.MessageToDict(
        codec.to_proto(event, router_instance="host-1"), always_print_fields_with_no_presence=True
    )
    assert json.loads(value) == canonical


@pytest.mark.parametrize("usage", [domain.Usage(120, 30, 100), domain.Usage()])
def test_an_unused_hedge_answer_is_canonical_json_and_round_trips(usage: domain.Usage) -> None:
    attempt = h.attempt(
        outcome=domain.AttemptOutcome.SUCCESS, error_class="", unused_usage=usage, unused_cost_nanos=98_765
    )
    event = h.event(ev.AttemptEvent(1, attempt, "m"))
    message = codec.to_proto(event, router_instance="host-1")
    assert message.attempt.HasField("unused_usage")  # set even when every count is zero
    _, value, headers = codec.encode(event, "json", router_instance="host-1")
    assert json.loads(value) == json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    for encoding in ("json", "protobuf"):
        _, value, headers = codec.encode(event, encoding, router_instance="host-1")
        assert codec.decode(value, headers) == message


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
@pytest.mark.parametrize("kind", KINDS)
def test_decode_round_trips_both_encodings(kind: str, encoding: codec.Encoding) -> None:
    event = sample(kind)
    _, value, headers = codec.encode(event, encoding, router_instance="host-1")

    assert codec.decode(value, headers) == codec.to_proto(event, router_instance="host-1")


NASTY = ['quo"te', "back\\slash", "ctl\x00\x01\n\t", "ünï ✓ 😀", "line\u2028sep", "</script>", ""]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", NASTY)
def test_json_escapes_every_string_field(kind: str, text: str) -> None:
    context = h.context(text or "r", trace_id=text, team=text, tags={text: text, "k": text})
    body = h.bodies()[kind]
    if kind == "decision":
        body = ev.DecisionEvent(dataclasses.replace(h.decision(), policy=text, chain=("a", text)))
    elif kind == "error":
        body = ev.ErrorEvent(text, text, text, 1)
    event = ev.TelemetryEvent.create(context, body, now_unix_s=h.NOW)
    _, value, _ = codec.encode(event, "json", router_instance=text)

    canonical = json_format.MessageToDict(
        codec.to_proto(event, router_instance=text), always_print_fields_with_no_presence=True
    )
    assert json.loads(value) == canonical


def test_json_is_compact_utf8_readable_with_plain_json() -> None:
    _, value, _ = codec.encode(h.event(h.bodies()["completion"]), "json")

    assert b" " not in value.replace(b"hi \xe2\x9c\x93", b"")  # compact; non-ASCII kept as UTF-8
    doc = json.loads(value)
    assert doc["requestId"] == "req-1"
    assert doc["tags"] == {"feature": "summarise", "plan": "pro"}
    body = doc["completion"]
    assert body["costNanosUsd"] == "987654321012"  # int64 is a JSON string in proto3 JSON
    assert body["usage"] == {
        "inputTokenCount": "1200",
        "outputTokenCount": "340",
        "cachedInputTokenCount": "1000",
    }
    assert body["finishReason"] == "FINISH_REASON_STOP"
    assert body["promptText"] == "hi ✓"
    assert body["cacheHit"] is False  # zero values are printed: a stable shape for schema inference


def test_protobuf_value_parses_with_generated_classes() -> None:
    _, value, _ = codec.encode(h.event(h.bodies()["decision"]), "protobuf")

    message = events_pb2.Event.FromString(value)
    assert message.WhichOneof("body") == "decision"
    assert message.decision.task_type == router_pb2.TASK_TYPE_CODE
    assert message.decision.chosen == "openai/gpt-4o-mini"
    assert list(message.decision.fallbacks) == ["anthropic/claude-haiku", "sim/m3"]
    first = message.decision.candidates[0]
    assert (first.estimated_cost.units, first.estimated_cost.nanos) == (1234, 567_890_123)
    assert message.decision.candidates[2].exclusion_reason == "context window 8192 < 12000"


def test_attempt_units_are_milliseconds_and_optional_fields_stay_unset() -> None:
    message = codec.to_proto(h.event(ev.AttemptEvent(0, h.attempt(retry_after_s=None), "m")))

    assert message.attempt.latency_ms == 432
    assert message.attempt.error_class == router_pb2.ERROR_CLASS_RATE_LIMITED
    assert message.attempt.outcome == router_pb2.ATTEMPT_OUTCOME_ERROR
    assert not message.attempt.HasField("retry_after_ms")
    assert not message.attempt.HasField("time_to_first_token_ms")
    assert message.attempt.start_time.ToJsonString() == "2026-11-18T11:06:38.750Z"


def test_headers_are_cloudevents_binary_mode() -> None:
    event = h.event(h.bodies()["attempt"])
    key, _, headers = codec.encode(event, "protobuf", router_instance="host-1")

    assert key == b"req-1"
    assert dict(headers) == {
        "ce_specversion": b"1.0",
        "ce_id": event.event_id.encode(),
        "ce_source": b"//llmrouter/router/host-1",
        "ce_type": b"com.llmrouter.attempt.v1",
        "ce_time": b"2026-11-18T11:06:40.250Z",
        "ce_dataschema": b"type.googleapis.com/router.v1.Event",
        "content-type": b"application/protobuf",
    }
    assert codec.kind_of(headers) == "attempt"


@pytest.mark.parametrize("kind", KINDS)
def test_ce_type_names_the_body(kind: str) -> None:
    _, value, headers = codec.encode(sample(kind), "json")

    assert dict(headers)["ce_type"] == f"com.llmrouter.{kind}.v1".encode()
    assert dict(headers)["content-type"] == b"application/json"
    assert codec.decode(value, headers).WhichOneof("body") == kind


def test_event_time_is_utc_rfc3339_kept_to_the_microsecond() -> None:
    event = h.event()._replace(event_time_unix_s=1_700_000_000.1234567)
    _, value, headers = codec.encode(event, "json")

    assert json.loads(value)["eventTime"] == "2023-11-14T22:13:20.123457Z"
    parsed = dt.datetime.fromisoformat(dict(headers)["ce_time"].decode())
    assert parsed == dt.datetime(2023, 11, 14, 22, 13, 20, 123457, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "unix_s",
    [
        0.0,
        1.5,
        1.25,
        1.000001,
        1_700_000_000.0,
        1_700_000_000.999_999_6,
        -1.5,
        -0.000_001,
        1_764_877_777.1234,
    ],
)
def test_one_step_rfc3339_equals_split_then_format(unix_s: float) -> None:
    # The JSON encoder's fast path must print what the proto Timestamp (split_time) means.
    assert wv.rfc3339_of(unix_s) == wv.rfc3339(*wv.split_time(unix_s))


def test_default_router_instance_is_host_and_pid() -> None:
    message = codec.to_proto(h.event())

    assert message.router_instance == codec.default_router_instance()
    assert message.router_instance.endswith(f"-{__import__('os').getpid()}")


@pytest.mark.parametrize("task_type", list(domain.TaskType))
def test_every_task_type_has_a_proto_twin(task_type: domain.TaskType) -> None:
    body = ev.DecisionEvent(dataclasses.replace(h.decision(), task_type=task_type))
    assert router_pb2.TaskType.Name(codec.to_proto(h.event(body)).decision.task_type).endswith(task_type.name)


@pytest.mark.parametrize("error_class", list(ErrorClass))
def test_every_error_class_has_a_proto_twin(error_class: ErrorClass) -> None:
    body = ev.AttemptEvent(0, h.attempt(error_class=error_class.value), "m")
    name = router_pb2.ErrorClass.Name(codec.to_proto(h.event(body)).attempt.error_class)
    assert name == f"ERROR_CLASS_{error_class.name}"


@pytest.mark.parametrize("reason", list(domain.FinishReason))
def test_every_finish_reason_maps(reason: domain.FinishReason) -> None:
    message = codec.to_proto(h.event(h.completion(finish_reason=reason)))
    expected = (
        "FINISH_REASON_UNSPECIFIED"
        if reason is domain.FinishReason.UNKNOWN
        else f"FINISH_REASON_{reason.name}"
    )
    assert router_pb2.FinishReason.Name(message.completion.finish_reason) == expected


@pytest.mark.parametrize("score", [float("nan"), float("inf"), 1.0, 0.0])
def test_json_matches_mapping_for_edge_values(score: float) -> None:
    event = h.event(ev.FeedbackEvent(score, {}))
    _, value, headers = codec.encode(event, "json", router_instance="x")

    canonical = json_format.MessageToDict(
        codec.to_proto(event, router_instance="x"), always_print_fields_with_no_presence=True
    )
    assert json.loads(value) == canonical  # non-finite doubles are the strings "NaN", "Infinity"
    assert codec.decode(value, headers).WhichOneof("body") == "feedback"


def test_decode_rejects_unknown_content_type() -> None:
    with pytest.raises(ValueError, match="content-type"):
        codec.decode(b"{}", [("content-type", b"text/plain")])


def test_create_makes_a_uuid4_id_and_uses_the_callers_time() -> None:
    first = ev.TelemetryEvent.create(h.context(), ev.FeedbackEvent(1.0), now_unix_s=12.5)
    second = ev.TelemetryEvent.create(h.context(), ev.FeedbackEvent(1.0), now_unix_s=12.5)

    assert uuid.UUID(first.event_id).version == 4
    assert str(uuid.UUID(first.event_id)) == first.event_id  # canonical: lowercase, 36 characters
    assert first.event_id != second.event_id
    assert first.event_time_unix_s == 12.5
    assert first.kind == "feedback"


def test_null_sink_accepts_and_discards() -> None:
    sink: ev.EventSink = ev.NullSink()
    sink.publish(h.event())  # nothing to observe: it must simply not fail


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_an_event_without_an_id_gets_a_fresh_one_when_encoded(encoding: codec.Encoding) -> None:
    # The engine's events leave the id to the encoder (drawn in the sender's batch).
    event = h.event()._replace(event_id="")

    records = [codec.encode(event, encoding) for _ in range(2)]

    ids = [dict(headers)["ce_id"].decode() for _, _, headers in records]
    assert ids[0] != ids[1]
    for (_, value, headers), event_id in zip(records, ids, strict=True):
        assert uuid.UUID(event_id).version == 4
        assert codec.decode(value, headers).event_id == event_id  # the value says the same


def test_event_ids_are_rfc4122_version_4() -> None:
    ids = {ev.new_event_id() for _ in range(2000)}

    assert len(ids) == 2000
    for event_id in ids:
        parsed = uuid.UUID(event_id)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == event_id
