"""Property tests over upstream answers, for each adapter, unary JSON and SSE streams: bodies shaped
like the protocol's but with arbitrary JSON in any field, wrong types, missing fields, huge numbers,
then possibly truncated, or replaced by garbage bytes or invalid UTF-8. Whatever arrives, the adapter
returns a valid ChatResult (or stream events ending in exactly one StreamDone) or raises
ProviderError, never any other exception; and any usage it returns satisfies the usage invariants."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_service.domain import (
    ChatRequest,
    ChatResult,
    FinishReason,
    Message,
    Role,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from router_service.errors import ProviderError
from router_service.providers.anthropic import AnthropicAdapter
from router_service.providers.base import ProviderAdapter, ProviderEndpoint
from router_service.providers.gemini import GeminiAdapter
from router_service.providers.openai import OpenAIAdapter
from router_service.providers.usage import ModelLimits, usage_bounds
from tests.providers.upstream import FakeUpstream, http_client, json_reply, split_every, sse_reply

T = TypeVar("T")
REQUEST = ChatRequest(messages=(Message(Role.USER, "hi"),))
LIMITS = ModelLimits(context_window=200_000, max_output_tokens=8192)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies ---------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**31), max_value=10**31)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
counts = st.integers(min_value=-3, max_value=300) | st.sampled_from([10**6, 10**15, 10**30, -(10**20)])


def anyish(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the field's valid shape, sometimes any JSON at all."""
    return st.one_of(valid, valid, any_json)


def obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object whose every field may be missing, valid, or anything."""
    return st.fixed_dictionaries({}, optional={k: anyish(v) for k, v in fields.items()})


text = st.text(max_size=8)
openai_usage = obj(
    prompt_tokens=counts, completion_tokens=counts, prompt_tokens_details=obj(cached_tokens=counts)
)
openai_tool_call = obj(
    index=st.integers(0, 3), id=text, type=st.just("function"), function=obj(name=text, arguments=text)
)
openai_message = obj(
    role=st.just("assistant"), content=text, refusal=text, tool_calls=st.lists(openai_tool_call, max_size=2)
)
openai_finish = st.sampled_from(["stop", "length", "tool_calls", "content_filter", "weird"])
openai_body = obj(
    id=text,
    model=text,
    choices=st.lists(obj(index=st.just(0), message=openai_message, finish_reason=openai_finish), max_size=2),
    usage=openai_usage,
)
openai_chunk = obj(
    model=text,
    choices=st.lists(obj(delta=openai_message, finish_reason=openai_finish) | st.builds(dict), max_size=1),
    usage=openai_usage,
    error=obj(type=text, code=text, message=text),
)

anthropic_usage = obj(
    input_tokens=counts,
    output_tokens=counts,
    cache_read_input_tokens=counts,
    cache_creation_input_tokens=counts,
)
anthropic_block = obj(
    type=st.sampled_from(["text", "tool_use", "thinking"]), text=text, id=text, name=text, input=any_json
)
anthropic_body = obj(
    id=text,
    model=text,
    content=st.lists(anthropic_block, max_size=3),
    stop_reason=st.sampled_from(["end_turn", "max_tokens", "tool_use", "refusal", "other"]),
    usage=anthropic_usage,
)
anthropic_event = st.one_of(
    obj(type=st.just("message_start"), message=obj(model=text, usage=anthropic_usage)),
    obj(type=st.just("content_block_start"), index=st.integers(0, 2), content_block=anthropic_block),
    obj(
        type=st.just("content_block_delta"),
        index=st.integers(0, 2),
        delta=obj(type=st.sampled_from(["text_delta", "input_json_delta"]), text=text, partial_json=text),
    ),
    obj(type=st.just("content_block_stop"), index=st.integers(0, 2)),
    obj(type=st.just("message_delta"), delta=obj(stop_reason=text), usage=anthropic_usage),
    st.just({"type": "message_stop"}),
    obj(type=st.just("error"), error=obj(type=text, message=text)),
    obj(type=st.just("ping")),
)

gemini_usage = obj(
    promptTokenCount=counts,
    candidatesTokenCount=counts,
    thoughtsTokenCount=counts,
    cachedContentTokenCount=counts,
)
gemini_part = obj(text=text, thought=st.booleans(), functionCall=obj(name=text, args=any_json))
gemini_body = obj(
    candidates=st.lists(
        obj(
            content=obj(role=st.just("model"), parts=st.lists(gemini_part, max_size=3)),
            finishReason=st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "OTHER"]),
        ),
        max_size=2,
    ),
    usageMetadata=gemini_usage,
    modelVersion=text,
    promptFeedback=obj(blockReason=text),
    error=obj(code=st.integers(100, 600), status=text, message=text),
)


def raw_bytes(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """The encoded value, or a truncation of it, or it with invalid UTF-8 spliced in, or garbage."""
    truncated = st.tuples(valid, st.floats(0, 1)).map(lambda t: t[0][: int(len(t[0]) * t[1])])
    spliced = st.tuples(
        valid, st.floats(0, 1), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"])
    ).map(lambda t: t[0][: int(len(t[0]) * t[1])] + t[2] + t[0][int(len(t[0]) * t[1]) :])
    return st.one_of(valid, valid, valid, truncated, spliced, st.binary(max_size=64))


def encoded(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return values.map(lambda v: json.dumps(v).encode())


def sse(events: st.SearchStrategy[Any], done: bool) -> st.SearchStrategy[bytes]:
    frames = st.lists(raw_bytes(encoded(events)), max_size=6).map(
        lambda items: b"".join(b"data: " + item.replace(b"\n", b" ") + b"\n\n" for item in items)
    )
    ending = st.just(b"data: [DONE]\n\n" if done else b"") | st.just(b"")
    return st.tuples(frames, ending).map(lambda t: t[0] + t[1])


# --- the checks ---------------------------------------------------------------------------------

Factory = Callable[[ProviderEndpoint, httpx.AsyncClient], ProviderAdapter]
ADAPTERS: dict[str, Factory] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
}


def assert_usage_invariants(usage: Usage) -> None:
    max_input, max_output = usage_bounds(REQUEST, LIMITS)
    for count in (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens):
        assert type(count) is int and count >= 0
    assert usage.cached_input_tokens <= usage.input_tokens <= max_input
    assert usage.output_tokens <= max_output


class Served:
    """One loop, one fake upstream and one client for a whole module: a property runs hundreds of
    examples, and a server and client per example would cost more than the examples themselves."""

    def __init__(self) -> None:
        self._runner = asyncio.Runner()
        self._stack = AsyncExitStack()
        self.upstream = self._runner.run(self._stack.enter_async_context(FakeUpstream()))
        self.client = self._runner.run(self._stack.enter_async_context(http_client()))

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(call)

    def close(self) -> None:
        self._runner.run(self._stack.aclose())
        self._runner.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    served = Served()
    yield served
    served.close()


async def _unary(served: Served, kind: str, body: bytes) -> ChatResult | ProviderError:
    served.upstream.reply = json_reply(body)
    try:
        return await _adapter(served, kind).complete(REQUEST, "m")
    except ProviderError as exc:
        return exc


async def _stream(
    served: Served, kind: str, data: bytes, chunk: int
) -> tuple[list[StreamEvent], ProviderError | None]:
    served.upstream.reply = sse_reply(split_every(data, chunk))
    events: list[StreamEvent] = []
    try:
        async for event in _adapter(served, kind).stream(REQUEST, "m"):
            events.append(event)
    except ProviderError as exc:
        return events, exc
    return events, None


def _adapter(served: Served, kind: str) -> ProviderAdapter:
    endpoint = ProviderEndpoint(kind, kind, served.upstream.url, "k", models={"m": LIMITS})
    return ADAPTERS[kind](endpoint, served.client)


def check_unary(served: Served, kind: str, body: bytes) -> None:
    outcome = served.run(_unary(served, kind, body))
    if isinstance(outcome, ChatResult):
        assert isinstance(outcome.message.content, str)
        assert isinstance(outcome.finish_reason, FinishReason)
        assert all(isinstance(c.arguments_json, str) for c in outcome.message.tool_calls)
        assert_usage_invariants(outcome.usage)


def check_stream(served: Served, kind: str, data: bytes, chunk: int) -> None:
    events, error = served.run(_stream(served, kind, data, chunk))
    assert all(isinstance(e, (TextDelta, ToolCallDelta, StreamDone)) for e in events)
    done = [e for e in events if isinstance(e, StreamDone)]
    assert len(done) <= 1
    if error is None:
        assert done and events[-1] is done[0]  # a clean end is exactly one StreamDone, last
    for event in done:
        assert_usage_invariants(event.usage)


@PROPERTY
@given(body=raw_bytes(encoded(openai_body)))
def test_openai_unary_bodies(served: Served, body: bytes) -> None:
    check_unary(served, "openai", body)


@PROPERTY
@given(body=raw_bytes(encoded(anthropic_body)))
def test_anthropic_unary_bodies(served: Served, body: bytes) -> None:
    check_unary(served, "anthropic", body)


@PROPERTY
@given(body=raw_bytes(encoded(gemini_body)))
def test_gemini_unary_bodies(served: Served, body: bytes) -> None:
    check_unary(served, "gemini", body)


@PROPERTY
@given(data=sse(openai_chunk, done=True), chunk=st.integers(1, 64))
def test_openai_streams(served: Served, data: bytes, chunk: int) -> None:
    check_stream(served, "openai", data, chunk)


@PROPERTY
@given(data=sse(anthropic_event, done=False), chunk=st.integers(1, 64))
def test_anthropic_streams(served: Served, data: bytes, chunk: int) -> None:
    check_stream(served, "anthropic", data, chunk)


@PROPERTY
@given(data=sse(gemini_body, done=False), chunk=st.integers(1, 64))
def test_gemini_streams(served: Served, data: bytes, chunk: int) -> None:
    check_stream(served, "gemini", data, chunk)
