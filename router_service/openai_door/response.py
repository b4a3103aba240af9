"""The router's answers in OpenAI's Chat Completions shapes, plus its routing metadata.

Unary: a `chat.completion` object whose extra field `router` holds the request id, the chosen
deployment, policy and strategy, every attempt and the exact cost (nano-USD, and USD as an exact
decimal string); the same facts, but the attempts, go in `x-router-*` headers.

Streams: `chat.completion.chunk` objects as SSE `data:` lines. The first chunk (role) is sent once
the engine has committed to a deployment, so the headers can name it; the finish chunk carries
`router` with the cost; with `stream_options.include_usage`, a last chunk with empty `choices`
and the usage follows, as OpenAI sends it; then `data: [DONE]`. A stream that fails after its
first chunk ends with a `data: {"error": ...}` event and no `[DONE]`: the SDKs raise on it, so a
cut answer is never taken for a whole one.
"""

from __future__ import annotations

import json
from typing import Any

from router_service.call import Completion, StreamFinish, StreamStart
from router_service.catalog import Deployment
from router_service.domain import (
    AttemptRecord,
    ChatResult,
    FinishReason,
    Message,
    RouteDecision,
    ToolCallDelta,
    Usage,
)

NANOS_PER_USD = 1_000_000_000
DONE = b"data: [DONE]\n\n"

_FINISH = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.TOOL_CALLS: "tool_calls",
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.UNKNOWN: "unknown",  # the upstream's reason was not one of these: said so, not guessed
}
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def usd(nanos: int) -> str:
    """Exact: 1234 nano-USD is "0.000001234"."""
    units, rest = divmod(nanos, NANOS_PER_USD)
    return f"{units}.{rest:09d}"


def completion_body(request_id: str, created: int, done: Completion) -> dict[str, Any]:
    result: ChatResult = done.result
    d = done.deployment
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": created,
        "model": d.model,
        "choices": [
            {
                "index": 0,
                "message": _message(result.message),
                "logprobs": None,
                "finish_reason": _FINISH[result.finish_reason],
            }
        ],
        "usage": usage(result.usage),
        "router": routing(
            request_id, d, done.decision, done.attempts, result.upstream_model, done.cost_nanos
        ),
    }


def routing_headers(request_id: str, deployment: Deployment, attempts: int) -> dict[str, str]:
    return {
        "x-router-request-id": request_id,
        "x-router-deployment": deployment.key,
        "x-router-attempts": str(attempts),
    }


def cost_headers(cost_nanos: int) -> dict[str, str]:
    return {"x-router-cost-usd": usd(cost_nanos), "x-router-cost-nanos": str(cost_nanos)}


def routing(
    request_id: str,
    deployment: Deployment,
    decision: RouteDecision,
    attempts: tuple[AttemptRecord, ...],
    upstream_model: str,
    cost_nanos: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": request_id,
        "deployment": deployment.key,
        "provider": deployment.provider,
        "model": deployment.model,
        "upstream_model": upstream_model or deployment.upstream_model,
        "policy": decision.policy,
        "strategy": decision.strategy,
        "task_type": decision.task_type.value,
        "attempts": [_attempt(a) for a in attempts],
    }
    if cost_nanos is not None:
        body["cost_nanos"] = cost_nanos
        body["cost_usd"] = usd(cost_nanos)
    return body


def _attempt(a: AttemptRecord) -> dict[str, Any]:
    return {
        "provider": a.provider,
        "model": a.model,
        "outcome": a.outcome.value,
        "error_class": a.error_class,
        "http_status": a.http_status,
        "latency_ms": round(a.latency_s * 1000, 3),
    }


def usage(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
    }


def _message(m: Message) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": m.content if m.content or not m.tool_calls else None,
        "refusal": None,
    }
    if m.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in m.tool_calls
        ]
    return message


def encode(body: dict[str, Any]) -> bytes:
    return _dumps(body).encode()


class ChunkWriter:
    """SSE bytes for one stream's chunks: the fixed fields made once."""

    def __init__(self, request_id: str, created: int, model: str, include_usage: bool) -> None:
        self._head = {"id": f"chatcmpl-{request_id}", "object": "chat.completion.chunk", "created": created}
        self._model = model
        self._request_id = request_id
        self._include_usage = include_usage

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        chunk: dict[str, Any] = {
            **self._head,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return b"data: " + encode(chunk) + b"\n\n"

    def start(self, item: StreamStart) -> bytes:
        self._model = item.deployment.model
        return self._chunk({"role": "assistant", "content": ""})

    def text(self, text: str) -> bytes:
        return self._chunk({"content": text})

    def tool_call(self, d: ToolCallDelta) -> bytes:
        call: dict[str, Any] = {"index": d.index}
        if d.id:
            call["id"] = d.id
            call["type"] = "function"
        function: dict[str, Any] = {"arguments": d.arguments_fragment}
        if d.name:
            function["name"] = d.name
        call["function"] = function
        return self._chunk({"tool_calls": [call]})

    def finish(self, item: StreamFinish) -> bytes:
        d = item.deployment
        meta = routing(
            self._request_id, d, item.decision, item.attempts, item.done.upstream_model, item.cost_nanos
        )
        out = self._chunk({}, _FINISH[item.done.finish_reason], router=meta)
        if self._include_usage:
            last = {**self._head, "model": self._model, "choices": [], "usage": usage(item.done.usage)}
            out += b"data: " + encode(last) + b"\n\n"
        return out + DONE

    @staticmethod
    def error(body: dict[str, Any]) -> bytes:
        """The event that ends a failed stream (no [DONE] after it)."""
        return b"data: " + encode(body) + b"\n\n"
