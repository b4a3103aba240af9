"""Usage is checked at the adapter boundary: the pure rules (tables), then every adapter, unary and
stream, on upstream answers whose counts are negative, huge, or not integers: each is a BAD_RESPONSE
attempt, logged without prompt content and counted, never a result to bill."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from router_service.domain import ChatRequest, GenerationParams, Message, Role, StreamDone, Usage
from router_service.errors import ErrorClass, ProviderError
from router_service.providers.anthropic import AnthropicAdapter
from router_service.providers.base import ProviderAdapter, ProviderEndpoint
from router_service.providers.gemini import GeminiAdapter
from router_service.providers.openai import OpenAIAdapter
from router_service.providers.usage import (
    HARD_MAX_TOKENS,
    ImplausibleUsageError,
    ModelLimits,
    check_usage,
    usage_bounds,
    wire_count,
)
from tests.providers.support import adapter_factory, collect
from tests.providers.upstream import FakeUpstream, Reply, json_reply, sse_reply

PROMPT = "a prompt that must never reach a log line"
REQUEST = ChatRequest(messages=(Message(Role.USER, PROMPT),))
LIMITS = ModelLimits(context_window=128_000, max_output_tokens=4096)


# --- the rules, pure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "limits", "reason"),
    [
        (Usage(-1, 0, 0), LIMITS, "negative"),
        (Usage(0, -5, 0), None, "negative"),
        (Usage(10, 1, 11), LIMITS, "cached_above_input"),
        (Usage(256_001, 1, 0), LIMITS, "input_above_bound"),
        (Usage(1, 256_001, 0), LIMITS, "output_above_bound"),
        (Usage(1, 10**15, 0), LIMITS, "output_above_bound"),
        (Usage(10**30, 1, 0), None, "input_above_bound"),
        (Usage(1, HARD_MAX_TOKENS + 1, 0), None, "output_above_bound"),
        (Usage(1.5, 1, 0), None, "not_integer"),  # type: ignore[arg-type]
        (Usage(True, 1, 0), None, "not_integer"),
    ],
)
def test_implausible_usage_is_refused(usage: Usage, limits: ModelLimits | None, reason: str) -> None:
    with pytest.raises(ImplausibleUsageError) as caught:
        check_usage(usage, REQUEST, limits)
    assert caught.value.reason == reason
    assert caught.value.error_class is ErrorClass.BAD_RESPONSE
    assert len(caught.value.message) < 200  # a 31-digit count is not quoted whole


@pytest.mark.parametrize(
    "usage",
    [Usage(), Usage(256_000, 256_000, 256_000), Usage(100, 4096, 0), Usage(1, 1, 1)],
)
def test_plausible_usage_passes(usage: Usage) -> None:
    assert check_usage(usage, REQUEST, LIMITS) is usage


def test_bounds_follow_the_window_the_model_and_the_request() -> None:
    assert usage_bounds(REQUEST, LIMITS) == (256_000, 256_000)
    big_ask = ChatRequest(messages=REQUEST.messages, params=GenerationParams(max_output_tokens=200_000))
    assert usage_bounds(big_ask, LIMITS) == (256_000, 400_000)
    assert usage_bounds(REQUEST, None) == (HARD_MAX_TOKENS, HARD_MAX_TOKENS)
    assert usage_bounds(REQUEST, ModelLimits(10**9, 1)) == (HARD_MAX_TOKENS, HARD_MAX_TOKENS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0),
        (0, 0),
        (7, 7),
        (-1, "negative"),
        (1.0, "not_integer"),
        ("3", "not_integer"),
        (False, "not_integer"),
    ],
)
def test_wire_count(value: object, expected: int | str) -> None:
    if isinstance(expected, int):
        assert wire_count({"k": value}, "k") == expected
    else:
        with pytest.raises(ImplausibleUsageError) as caught:
            wire_count({"k": value}, "k")
        assert caught.value.reason == expected


# --- every adapter, unary and stream -----------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """How one protocol carries (input, output, cached) counts, unary and streamed."""

    name: str
    make: Callable[..., ProviderAdapter]
    body: Callable[[object, object, object], dict[str, Any]]
    stream: Callable[[object, object, object], bytes]


def _sse(*events: dict[str, Any], done: bool = False) -> bytes:
    data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    return data + (b"data: [DONE]\n\n" if done else b"")


def _openai_usage(i: object, o: object, c: object) -> dict[str, Any]:
    return {"prompt_tokens": i, "completion_tokens": o, "prompt_tokens_details": {"cached_tokens": c}}


def _openai_body(i: object, o: object, c: object) -> dict[str, Any]:
    message = {"role": "assistant", "content": "hi"}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return {"id": "r", "model": "m", "choices": [choice], "usage": _openai_usage(i, o, c)}


def _openai_stream(i: object, o: object, c: object) -> bytes:
    delta = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}
    return _sse(delta, {"choices": [], "usage": _openai_usage(i, o, c)}, done=True)


def _anthropic_usage(i: object, o: object, c: object) -> dict[str, Any]:
    return {"input_tokens": i, "output_tokens": o, "cache_read_input_tokens": c}


def _anthropic_body(i: object, o: object, c: object) -> dict[str, Any]:
    return {
        "id": "msg",
        "type": "message",
        "model": "m",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": _anthropic_usage(i, o, c),
    }


def _anthropic_stream(i: object, o: object, c: object) -> bytes:
    return _sse(
        {
            "type": "message_start",
            "message": {"model": "m", "usage": {"input_tokens": i, "cache_read_input_tokens": c}},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": o}},
        {"type": "message_stop"},
    )


def _gemini_body(i: object, o: object, c: object) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": i, "candidatesTokenCount": o, "cachedContentTokenCount": c},
        "modelVersion": "m",
    }


def _gemini_stream(i: object, o: object, c: object) -> bytes:
    return _sse(_gemini_body(i, o, c))


WIRES = [
    Wire("openai", OpenAIAdapter, _openai_body, _openai_stream),
    Wire("anthropic", AnthropicAdapter, _anthropic_body, _anthropic_stream),
    Wire("gemini", GeminiAdapter, _gemini_body, _gemini_stream),
]

# (input, output, cached) as the wire carries them, and the reason each is refused.
IMPLAUSIBLE = [
    pytest.param(-3, 5, 0, "negative", id="negative-input"),
    pytest.param(3, -5, 0, "negative", id="negative-output"),
    pytest.param(10**30, 5, 0, "input_above_bound", id="input-1e30"),
    pytest.param(3, 10**15, 0, "output_above_bound", id="output-1e15"),
    pytest.param(3, 5.0, 0, "not_integer", id="float"),
    pytest.param(True, 5, 0, "not_integer", id="bool"),
    pytest.param(3, "5", 0, "not_integer", id="string"),
]


Connect = Callable[[Wire, Reply], ProviderAdapter]


@pytest.fixture
def connect(upstream: FakeUpstream, client: httpx.AsyncClient) -> Connect:
    def make(wire: Wire, reply: Reply) -> ProviderAdapter:
        endpoint = ProviderEndpoint(wire.name, wire.name, "https://upstream.test", "k", models={"m": LIMITS})
        return adapter_factory(upstream, client, wire.make, endpoint)(reply)

    return make


def _counted(provider: str, reason: str) -> float:
    labels = {"provider": provider, "reason": reason}
    return REGISTRY.get_sample_value("llmrouter_upstream_implausible_usage_total", labels) or 0.0


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
@pytest.mark.parametrize(("i", "o", "c", "reason"), IMPLAUSIBLE)
async def test_implausible_usage_fails_the_attempt_unary_and_stream(
    connect: Connect,
    wire: Wire,
    i: object,
    o: object,
    c: object,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    before = _counted(wire.name, reason)
    unary = connect(wire, json_reply(wire.body(i, o, c)))
    with pytest.raises(ProviderError) as caught:
        await unary.complete(REQUEST, "m")
    assert caught.value.error_class is ErrorClass.BAD_RESPONSE

    streaming = connect(wire, sse_reply([wire.stream(i, o, c)]))
    events = []
    with pytest.raises(ProviderError) as caught:
        async for event in streaming.stream(REQUEST, "m"):
            events.append(event)
    assert caught.value.error_class is ErrorClass.BAD_RESPONSE
    assert not any(isinstance(e, StreamDone) for e in events)  # nothing to bill was ever yielded

    assert _counted(wire.name, reason) == before + 2
    logged = [r.getMessage() for r in caplog.records if "implausible usage" in r.getMessage()]
    assert len(logged) == 2 and all(reason in line and wire.name in line for line in logged)
    assert PROMPT not in caplog.text


@pytest.mark.parametrize("wire", [WIRES[0], WIRES[2]], ids=lambda w: w.name)
async def test_cached_above_input_is_refused(connect: Connect, wire: Wire) -> None:
    adapter = connect(wire, json_reply(wire.body(3, 5, 4)))
    with pytest.raises(ImplausibleUsageError) as caught:
        await adapter.complete(REQUEST, "m")
    assert caught.value.reason == "cached_above_input"


@pytest.mark.parametrize("wire", WIRES, ids=lambda w: w.name)
async def test_plausible_usage_is_kept_unary_and_stream(connect: Connect, wire: Wire) -> None:
    unary = connect(wire, json_reply(wire.body(30, 5, 2)))
    result = await unary.complete(REQUEST, "m")
    streaming = connect(wire, sse_reply([wire.stream(30, 5, 2)]))
    done = (await collect(streaming, REQUEST, "m"))[-1]
    assert isinstance(done, StreamDone)
    # Anthropic reports cache reads apart from input_tokens; the internal input includes them.
    expected = Usage(32, 5, 2) if wire.name == "anthropic" else Usage(30, 5, 2)
    assert result.usage == done.usage == expected
