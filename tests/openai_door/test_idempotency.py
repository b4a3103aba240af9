"""The door's idempotency rules, without I/O: which header names the request, what makes a retry
the same request."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.errors import InvalidRequestError
from router_service.identity.model import UNRESTRICTED, Identity
from router_service.openai_door.idempotency import (
    REPLAY_HEADER,
    answer_headers,
    caller_request_id,
    request_fingerprint,
    stream_answer,
    unary_answer,
)

BODY = {"model": "m1", "messages": [{"role": "user", "content": "Hello"}], "temperature": 0.5}
KEY = Identity(key_id="k_a")


def violations(headers: dict[str, str]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequestError) as error:
        caller_request_id(headers)
    return [(v.field, v.description) for v in error.value.violations]


def test_either_header_names_the_request_and_both_must_agree() -> None:
    assert caller_request_id({}) == ""
    assert caller_request_id({"idempotency-key": "retry-1"}) == "retry-1"
    assert caller_request_id({"x-router-request-id": "retry-1"}) == "retry-1"
    assert caller_request_id({"idempotency-key": "a:1", "x-router-request-id": "a:1"}) == "a:1"
    assert violations({"idempotency-key": "a", "x-router-request-id": "b"}) == [
        ("x-router-request-id", "must equal idempotency-key when both are sent")
    ]


def test_ids_follow_the_grpc_rule() -> None:
    rule = "must be 1-128 characters of [A-Za-z0-9._:-]"
    assert violations({"idempotency-key": "has space"}) == [("idempotency-key", rule)]
    assert violations({"idempotency-key": ""}) == [("idempotency-key", rule)]
    assert violations({"x-router-request-id": "x" * 129}) == [("x-router-request-id", rule)]
    assert caller_request_id({"idempotency-key": "x" * 128}) == "x" * 128


def test_the_same_request_is_the_same_whatever_its_key_order_or_encoding() -> None:
    reordered = json.loads(json.dumps(dict(reversed(list(BODY.items())))))
    assert request_fingerprint(KEY, BODY, {}) == request_fingerprint(KEY, reordered, {})


def test_another_body_key_or_routing_header_is_another_request() -> None:
    same = request_fingerprint(KEY, BODY, {})
    assert request_fingerprint(KEY, {**BODY, "temperature": 0.6}, {}) != same
    assert request_fingerprint(Identity(key_id="k_b"), BODY, {}) != same
    assert request_fingerprint(UNRESTRICTED, BODY, {}) != same
    assert request_fingerprint(KEY, BODY, {"x-router-policy": "cheap"}) != same
    # Headers the door does not read do not make it another request (an SDK's retry-count header).
    assert request_fingerprint(KEY, BODY, {"x-stainless-retry-count": "1"}) == same


def test_answers_keep_headers_and_bytes() -> None:
    unary = unary_answer({"x-router-request-id": "r1"}, b'{"id":"chatcmpl-r1"}')
    assert unary[2] == b'{"id":"chatcmpl-r1"}'
    assert answer_headers(unary) == {"x-router-request-id": "r1", REPLAY_HEADER: "true"}
    stream = stream_answer({"content-type": "text/event-stream"}, [b"data: 1\n\n", b"data: [DONE]\n\n"])
    assert stream[2:] == (b"data: 1\n\n", b"data: [DONE]\n\n")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, max_size=6), st.randoms(use_true_random=False))
def test_fingerprint_ignores_key_order_at_every_depth(body: dict[str, object], rnd: object) -> None:
    def shuffled(value: object) -> object:
        if isinstance(value, dict):
            items = list(value.items())
            rnd.shuffle(items)  # type: ignore[attr-defined]
            return {k: shuffled(v) for k, v in items}
        if isinstance(value, list):
            return [shuffled(v) for v in value]
        return value

    assert request_fingerprint(KEY, body, {}) == request_fingerprint(KEY, shuffled(body), {})  # type: ignore[arg-type]
