"""decode(): the router's JSON fast path, the canonical fallback, protobuf, and bad records."""

from __future__ import annotations

import json
import math

import pytest
from google.protobuf import json_format

from consumers import events as ce
from consumers.decode import DecodeError, decode
from router_service import domain
from router_service.telemetry import event_codec
from router_service.telemetry import events as ev
from tests.telemetry import helpers as th

JSON = [("content-type", b"application/json")]


def _records(encoding: event_codec.Encoding) -> dict[str, tuple[bytes, list[tuple[str, bytes]]]]:
    out = {}
    for kind, body in th.bodies().items():
        _, value, headers = event_codec.encode(th.event(body), encoding)
        out[kind] = (value, headers)
    return out


EXPECTED_BODIES: dict[str, ce.Body | None] = {
    "decision": ce.Decision(task_type="code", chosen="openai/gpt-4o-mini"),
    "attempt": ce.Attempt("openai", "gpt-4o-mini", "error", "rate_limited", latency_ms=432, ttft_ms=None),
    "completion": ce.Completion("anthropic", "claude-haiku", 1200, 340, 1000, 987_654_321_012, 0, False),
    "feedback": ce.Feedback(0.75, evaluator=True),
    "error": None,
}


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
@pytest.mark.parametrize("kind", list(EXPECTED_BODIES))
def test_every_kind_decodes_to_the_same_facts_in_both_encodings(encoding: str, kind: str) -> None:
    value, headers = _records(encoding)[kind]  # type: ignore[arg-type]
    event = decode(value, headers)
    expected = EXPECTED_BODIES[kind]
    if expected is None:
        assert event is None
        return
    assert event is not None
    assert event.body == expected
    envelope = event.envelope
    assert (envelope.request_id, envelope.api_key_id, envelope.team, envelope.customer, envelope.user) == (
        "req-1",
        "key-7",
        "search",
        "acme",
        "u-4711",
    )
    assert dict(envelope.tags) == {"feature": "summarise", "plan": "pro"}
    assert math.isclose(envelope.event_time_s, th.NOW, abs_tol=1e-6)


def test_other_valid_json_spellings_go_the_canonical_way_and_decode_the_same() -> None:
    """snake_case names, numeric enums, omitted zero fields: valid proto3 JSON, not the fast path's."""
    event = th.event(th.bodies()["completion"])
    message = event_codec.to_proto(event, router_instance="r")
    snake = json_format.MessageToJson(message, preserving_proto_field_name=True, use_integers_for_enums=True)
    fast = decode(event_codec.encode(event, "json", router_instance="r")[1], JSON)
    assert decode(snake.encode(), JSON) == fast


def test_an_event_written_before_the_user_field_existed_decodes_with_no_user() -> None:
    _, value, _ = event_codec.encode(th.event(th.bodies()["completion"]), "json")
    data = json.loads(value)
    del data["user"]

    event = decode(json.dumps(data).encode(), JSON)

    assert event is not None
    assert event.envelope.user == ""
    assert event.envelope.customer == "acme"


def test_an_attempt_with_time_to_first_token_keeps_it() -> None:
    attempt = th.attempt(outcome=domain.AttemptOutcome.SUCCESS, error_class="", time_to_first_token_s=0.25)
    for encoding in ("json", "protobuf"):
        _, value, headers = event_codec.encode(th.event(ev.AttemptEvent(0, attempt, "m")), encoding)
        decoded = decode(value, headers)
        assert decoded is not None
        assert decoded.body == ce.Attempt("openai", "gpt-4o-mini", "success", "unspecified", 432, 250)


def test_an_unused_hedge_answer_keeps_its_usage_and_cost_in_both_encodings() -> None:
    attempt = th.attempt(
        outcome=domain.AttemptOutcome.SUCCESS,
        error_class="",
        unused_usage=domain.Usage(120, 30, 100),
        unused_cost_nanos=98_765,
    )
    for encoding in ("json", "protobuf"):
        _, value, headers = event_codec.encode(th.event(ev.AttemptEvent(1, attempt, "m")), encoding)
        decoded = decode(value, headers)
        assert decoded is not None and isinstance(decoded.body, ce.Attempt)
        assert decoded.body.billed_unused
        assert (
            decoded.body.unused_input_tokens,
            decoded.body.unused_output_tokens,
            decoded.body.unused_cached_input_tokens,
            decoded.body.unused_cost_nanos_usd,
        ) == (120, 30, 100, 98_765)


def test_missing_content_type_means_json() -> None:
    _, value, _ = event_codec.encode(th.event(th.bodies()["feedback"]), "json")
    assert decode(value, []) is not None


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        (b"not json", JSON),
        (b"[1, 2]", JSON),
        (json.dumps({"eventId": "x"}).encode(), JSON),  # no body at all
        (b"\xff\xfe", JSON),
        (b"\x0a\x03abc\xff", [("content-type", b"application/protobuf")]),
        (b"{}", [("content-type", b"text/plain")]),
        (None, JSON),
    ],
)
def test_undecodable_records_raise_decode_error(
    value: bytes | None, headers: list[tuple[str, bytes]]
) -> None:
    with pytest.raises(DecodeError):
        decode(value, headers)


def test_a_wrongly_typed_field_is_not_guessed() -> None:
    data = json.loads(event_codec.encode(th.event(th.bodies()["completion"]), "json")[1])
    data["completion"]["costNanosUsd"] = "12.5"  # not an int64
    with pytest.raises(DecodeError):
        decode(json.dumps(data).encode(), JSON)


@pytest.mark.parametrize("kind", ["decision", "attempt", "completion", "feedback"])
def test_the_routers_json_takes_the_fast_path(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the router's JSON spelling drifts, decoding stays correct but ~20x slower: fail loudly."""

    def canonical_not_allowed(*_: object) -> None:
        raise AssertionError("fell back to the canonical parser")

    monkeypatch.setattr(event_codec, "decode", canonical_not_allowed)
    value, headers = _records("json")[kind]
    assert decode(value, headers) is not None
