"""Idempotent retries over HTTP: a caller request id in a header, on the gRPC path's request ledger.

A caller names its request with `Idempotency-Key` (the header Stripe-style APIs and the SDKs'
`extra_headers` use) or `x-router-request-id` (the name the router answers with); both, when
sent, must be equal. The id follows gRPC's `request_id` rule (request_rules.REQUEST_ID_RE) and
becomes the request's id (the response's `id` is `chatcmpl-<id>`, events carry it, gRPC
`Feedback` may name it). A retry with the same id, key and request is answered from the ledger
(request_ledger.py: the first answer, or a wait for the call still running) instead of a second
upstream call, bill and set of events; after a failure a retry runs again. The same id with
another request (or from another key) is refused: 400 `request_id_reused`, nothing run.

What is "the same request": the body as JSON with its keys sorted, and the routing headers the
door reads, so that two encodings of one request (key order, whitespace) are one request. The
door's own prefix keeps its fingerprints apart from gRPC's: an id used over gRPC is another
request here.

Answers are kept as the ledger keeps gRPC's: a tuple of byte strings, here the kind (`unary` or
`stream`), the response headers as JSON, then the body (unary) or every SSE event (stream).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from router_service.identity.model import Identity
from router_service.openai_door.request import POLICY_HEADER, SENSITIVITY_HEADER, TASK_TYPE_HEADER
from router_service.request_ledger import Answer, fingerprint
from router_service.request_rules import REQUEST_ID_RULE, Violations, check_request_id

IDEMPOTENCY_HEADER = "idempotency-key"
REQUEST_ID_HEADER = "x-router-request-id"
REPLAY_HEADER = "x-router-replayed"  # "true" on an answer replayed from the ledger

UNARY = b"unary"
STREAM = b"stream"
_KIND = b"openai.ChatCompletions"
_ROUTING_HEADERS = (POLICY_HEADER, TASK_TYPE_HEADER, SENSITIVITY_HEADER)
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def caller_request_id(headers: Mapping[str, str]) -> str:
    """The caller's request id ("" when it sent none), or InvalidRequestError naming the header."""
    v = Violations()
    given = [(name, headers[name]) for name in (IDEMPOTENCY_HEADER, REQUEST_ID_HEADER) if name in headers]
    for name, value in given:
        if value:
            check_request_id(value, name, v)
        else:
            v.add(name, REQUEST_ID_RULE)
    if len({value for _, value in given}) > 1:
        v.add(REQUEST_ID_HEADER, f"must equal {IDEMPOTENCY_HEADER} when both are sent")
    v.raise_if_any()
    return given[0][1] if given else ""


def request_fingerprint(caller: Identity, body: Mapping[str, Any], headers: Mapping[str, str]) -> bytes:
    """What makes a retry the same request: the caller's key, the body (keys sorted), the routing
    headers."""
    routing = "\0".join(headers.get(name, "") for name in _ROUTING_HEADERS)
    return fingerprint(
        _KIND + b"\0" + caller.key_id.encode(), _canonical(body).encode() + b"\0" + routing.encode()
    )


def unary_answer(headers: Mapping[str, str], body: bytes) -> Answer:
    return (UNARY, _canonical(dict(headers)).encode(), body)


def stream_answer(headers: Mapping[str, str], events: list[bytes]) -> Answer:
    return (STREAM, _canonical(dict(headers)).encode(), *events)


def answer_headers(answer: Answer) -> dict[str, str]:
    headers: dict[str, str] = json.loads(answer[1])
    headers[REPLAY_HEADER] = "true"
    return headers
