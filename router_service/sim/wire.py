"""OpenAI chat-completions wire format: unary bodies, stream chunks, SSE framing, error bodies.

Pure rendering of an `Answer`; the shapes follow the OpenAI API reference (chat.completion,
chat.completion.chunk, and `{"error": {...}}` bodies) so real client libraries parse them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from router_service.sim.answer import Answer, SimUsage

DONE = b"data: [DONE]\n\n"
SYSTEM_FINGERPRINT = "fp_sim"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """What every body and chunk of one response repeats."""

    id: str
    created: int
    model: str


def dumps(obj: object) -> bytes:
    return _dumps(obj).encode()


def sse_event(obj: object) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    return dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def usage_dict(usage: SimUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def completion_body(meta: ResponseMeta, answer: Answer) -> bytes:
    """A whole `chat.completion` object."""
    return dumps(
        {
            "id": meta.id,
            "object": "chat.completion",
            "created": meta.created,
            "model": meta.model,
            "choices": [
                {
                    "index": 0,
                    "message": _message(answer),
                    "logprobs": None,
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": usage_dict(answer.usage),
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
    )


def _message(answer: Answer) -> dict[str, Any]:
    call = answer.tool_call
    if call is None:
        return {"role": "assistant", "content": answer.content, "refusal": None}
    return {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        ],
    }


def stream_events(meta: ResponseMeta, answer: Answer, include_usage: bool) -> list[bytes]:
    """Every SSE event of a clean stream, in order: role chunk, deltas, finish chunk, the optional
    usage chunk (empty choices) and `[DONE]`."""
    deltas = _tool_deltas(answer) if answer.tool_call else _text_deltas(answer)
    usage_field: dict[str, Any] = {"usage": None} if include_usage else {}
    events = [sse_event(_chunk(meta, delta, None, usage_field)) for delta in deltas]
    events.append(sse_event(_chunk(meta, {}, answer.finish_reason, usage_field)))
    if include_usage:
        events.append(sse_event(_usage_chunk(meta, answer.usage)))
    events.append(DONE)
    return events


def _text_deltas(answer: Answer) -> list[dict[str, Any]]:
    first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    return [first, *({"content": text} for text in answer.content_deltas())]


def _tool_deltas(answer: Answer) -> list[dict[str, Any]]:
    call = answer.tool_call
    assert call is not None
    head = {
        "index": 0,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": ""},
    }
    first: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [head]}
    rest = [
        {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}
        for fragment in call.argument_fragments()
    ]
    return [first, *rest]


def _chunk(
    meta: ResponseMeta, delta: dict[str, Any], finish_reason: str | None, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        **extra,
    }


def _usage_chunk(meta: ResponseMeta, usage: SimUsage) -> dict[str, Any]:
    return {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [],
        "usage": usage_dict(usage),
    }


# Bodies for the MALFORMED outcome: they start like the real thing and then break off, the way a
# truncating proxy or a buggy upstream does.
MALFORMED_JSON = (
    b'{"id":"chatcmpl-sim","object":"chat.completion","choices":[{"index":0,"message":{"role":"assist'
)
MALFORMED_SSE = (
    b'data: {"id":"chatcmpl-sim","object":"chat.completion.chunk","choices":[{"delta":{"cont\n\n' + DONE
)
