"""Anthropic Messages adapter: the JSON it sends, and what it makes of recorded answers, streams and
errors (fixtures/anthropic/, served byte-exact by the fake upstream over loopback)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from router_service.domain import (
    ChatRequest,
    FinishReason,
    GenerationParams,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
    Usage,
)
from router_service.errors import ErrorClass, ProviderError
from router_service.providers.anthropic import (
    JSON_OBJECT_INSTRUCTION,
    JSON_SCHEMA_INSTRUCTION,
    AnthropicAdapter,
    stream_error,
)
from router_service.providers.base import ProviderEndpoint
from tests.providers import support
from tests.providers.support import adapter_factory
from tests.providers.upstream import (
    FakeUpstream,
    Reply,
    json_reply,
    split_every,
    sse_reply,
    sse_stream,
)

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
API_KEY = "sk-ant-test-key-do-not-leak"
MODEL = "claude-sonnet-4-5-20250929"
HELLO = ChatRequest(messages=(Message(Role.USER, "Hello"),))
WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


Connect = Callable[..., AnthropicAdapter]


ENDPOINT = ProviderEndpoint("anthropic", "anthropic", "https://api.anthropic.test/", API_KEY)


@pytest.fixture
def connect(upstream: FakeUpstream, client: httpx.AsyncClient) -> Connect:
    return adapter_factory(upstream, client, AnthropicAdapter, ENDPOINT)


def sse_upstream(name: str, chunk_size: int | None = None) -> Reply:
    return sse_stream(fixture(name), chunk_size)


async def collect(adapter: AnthropicAdapter, request: ChatRequest = HELLO) -> list[StreamEvent]:
    return await support.collect(adapter, request, MODEL)


async def collect_until_error(
    adapter: AnthropicAdapter, request: ChatRequest = HELLO
) -> tuple[list[StreamEvent], ProviderError]:
    return await support.collect_until_error(adapter, request, MODEL)


# --- request mapping ------------------------------------------------------------------------


async def test_request_places_system_merges_roles_and_maps_tools(
    connect: Connect, upstream: FakeUpstream
) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))
    request = ChatRequest(
        messages=(
            Message(Role.SYSTEM, "You are terse."),
            Message(Role.USER, "Weather and time in SF?"),
            Message(Role.SYSTEM, "Use metric units."),
            Message(
                Role.ASSISTANT,
                "Checking.",
                tool_calls=(
                    ToolCall("toolu_1", "get_weather", '{"location": "SF"}'),
                    ToolCall("toolu_2", "get_time", ""),
                ),
            ),
            Message(Role.TOOL, '{"temp_c": 18}', tool_call_id="toolu_1"),
            Message(Role.TOOL, "09:30", tool_call_id="toolu_2"),
            Message(Role.USER, "And tomorrow?"),
            Message(Role.ASSISTANT, "Let me see"),
            Message(Role.ASSISTANT, ""),
            Message(Role.ASSISTANT, "..."),
        ),
        params=GenerationParams(
            temperature=0.2, top_p=0.9, max_output_tokens=300, stop_sequences=("END",), seed=7
        ),
        tools=(WEATHER_TOOL, ToolSpec(name="get_time")),
        tool_choice=ToolChoice(ToolChoiceMode.AUTO),
    )

    await connect().complete(request, MODEL)

    assert upstream.sent == {
        "model": MODEL,
        "max_tokens": 300,
        "system": "You are terse.\n\nUse metric units.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather and time in SF?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "SF"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"temp_c": 18}'},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "09:30"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Let me see"}, {"type": "text", "text": "..."}],
            },
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather for a city",
                "input_schema": dict(WEATHER_TOOL.parameters),
            },
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "auto"},
    }


async def test_tool_results_come_first_when_merged_after_user_text(
    connect: Connect, upstream: FakeUpstream
) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))
    request = ChatRequest(
        messages=(
            Message(Role.ASSISTANT, "", tool_calls=(ToolCall("toolu_1", "f", "{}"),)),
            Message(Role.USER, "also this"),
            Message(Role.TOOL, "", tool_call_id="toolu_1"),
        )
    )

    await connect().complete(request, MODEL)

    assert upstream.sent["messages"][1] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}, {"type": "text", "text": "also this"}],
    }


async def test_headers_url_and_endpoint_options(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))
    adapter = connect(
        options={"version": "2099-01-01", "default_max_tokens": "1024"},
        headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )

    await adapter.complete(HELLO, MODEL)

    sent = upstream.requests[-1]
    assert sent.method == "POST"
    assert sent.target == "/v1/messages"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == "2099-01-01"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert upstream.sent["max_tokens"] == 1024
    assert "system" not in upstream.sent
    assert "stream" not in upstream.sent


async def test_default_version_and_max_tokens(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))

    await connect().complete(HELLO, MODEL)

    assert upstream.requests[-1].headers["anthropic-version"] == "2023-06-01"
    assert upstream.sent["max_tokens"] == 4096


@pytest.mark.parametrize("value", ["zero", "0", "-5", ""])
def test_bad_default_max_tokens_fails_at_construction(value: str) -> None:
    endpoint = ProviderEndpoint("anthropic", "anthropic", "https://x", options={"default_max_tokens": value})
    with pytest.raises(ValueError, match="default_max_tokens"):
        AnthropicAdapter(endpoint, httpx.AsyncClient())


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (ToolChoice(ToolChoiceMode.AUTO), {"type": "auto"}),
        (ToolChoice(ToolChoiceMode.REQUIRED), {"type": "any"}),
        (ToolChoice(ToolChoiceMode.FUNCTION, "get_weather"), {"type": "tool", "name": "get_weather"}),
        (ToolChoice(ToolChoiceMode.NONE), {"type": "none"}),
    ],
)
async def test_tool_choice(
    connect: Connect, upstream: FakeUpstream, choice: ToolChoice, wire: dict[str, str]
) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))

    await connect().complete(ChatRequest(HELLO.messages, tools=(WEATHER_TOOL,), tool_choice=choice), MODEL)

    assert upstream.sent["tool_choice"] == wire


async def test_tool_choice_is_not_sent_without_tools(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))

    await connect().complete(ChatRequest(HELLO.messages, tool_choice=ToolChoice(ToolChoiceMode.NONE)), MODEL)

    assert "tool_choice" not in upstream.sent
    assert "tools" not in upstream.sent


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
SCHEMA_TEXT = '{"properties": {"city": {"type": "string"}}, "type": "object"}'


@pytest.mark.parametrize(
    ("response_format", "expected_system"),
    [
        (ResponseFormat(ResponseFormatType.TEXT), "Be brief."),
        (ResponseFormat(ResponseFormatType.JSON_OBJECT), f"Be brief.\n\n{JSON_OBJECT_INSTRUCTION}"),
        (
            ResponseFormat(ResponseFormatType.JSON_SCHEMA, json_schema=SCHEMA, schema_name="city"),
            f"Be brief.\n\n{JSON_OBJECT_INSTRUCTION}\n{JSON_SCHEMA_INSTRUCTION}\n{SCHEMA_TEXT}",
        ),
    ],
)
async def test_json_modes_become_a_system_instruction(
    connect: Connect, upstream: FakeUpstream, response_format: ResponseFormat, expected_system: str
) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))
    request = ChatRequest(
        (Message(Role.SYSTEM, "Be brief."), *HELLO.messages), response_format=response_format
    )

    await connect().complete(request, MODEL)

    assert upstream.sent["system"] == expected_system


async def test_json_mode_without_system_messages(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))
    request = ChatRequest(HELLO.messages, response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT))

    await connect().complete(request, MODEL)

    assert upstream.sent["system"] == JSON_OBJECT_INSTRUCTION


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
async def test_tool_call_arguments_that_are_not_an_object_are_rejected_before_sending(
    connect: Connect, upstream: FakeUpstream, arguments: str
) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))
    request = ChatRequest(
        (*HELLO.messages, Message(Role.ASSISTANT, "", tool_calls=(ToolCall("toolu_1", "f", arguments),)))
    )

    with pytest.raises(ProviderError) as caught:
        await connect().complete(request, MODEL)

    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert "messages[1].tool_calls[0]" in caught.value.message
    assert upstream.requests == []


# --- unary responses ------------------------------------------------------------------------


async def test_unary_text_answer(connect: Connect) -> None:
    result = await connect(json_reply(fixture("message_text.json"))).complete(HELLO, "claude-sonnet-4-5")

    assert result.message == Message(Role.ASSISTANT, "Hello! How can I help you today?")
    assert result.finish_reason is FinishReason.STOP
    # Anthropic reports cache reads and writes apart from input_tokens; internal input is the total.
    assert result.usage == Usage(input_tokens=12 + 100 + 2048, output_tokens=10, cached_input_tokens=2048)
    assert result.upstream_model == MODEL
    assert result.response_id == "msg_01XFDUDYJgAACzvnptvVoYEL"


async def test_unary_tool_use_answer(connect: Connect) -> None:
    result = await connect(json_reply(fixture("message_tool_use.json"))).complete(HELLO, MODEL)

    assert result.message.content == "I'll check the weather in San Francisco."  # thinking block ignored
    assert result.message.tool_calls == (
        ToolCall(
            "toolu_01A09q90qw90lq917835lq9",
            "get_weather",
            '{"location":"San Francisco, CA","unit":"celsius"}',
        ),
        ToolCall("toolu_01B7nq3k2vX9mZ4tYw8cRdLf", "get_time", "{}"),
    )
    assert result.finish_reason is FinishReason.TOOL_CALLS
    assert result.usage == Usage(input_tokens=472, output_tokens=91)


async def test_unary_refusal_is_a_content_filter_finish(connect: Connect) -> None:
    result = await connect(json_reply(fixture("message_refusal.json"))).complete(HELLO, MODEL)

    assert result.finish_reason is FinishReason.CONTENT_FILTER
    assert result.message == Message(Role.ASSISTANT, "")


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"<html>bad gateway</html>", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"type": "message"}', "'content' is not a list"),
        (b'{"content": [{"type": "tool_use", "name": "f", "input": {}}]}', "tool_use id"),
    ],
)
async def test_malformed_success_body_is_a_bad_response(connect: Connect, body: bytes, what: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await connect(json_reply(body)).complete(HELLO, MODEL)

    assert caught.value.error_class is ErrorClass.BAD_RESPONSE
    assert what in caught.value.message


# --- HTTP and transport errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "headers", "error_class", "retry_after_s"),
    [
        (429, "error_rate_limit.json", {"retry-after": "12"}, ErrorClass.RATE_LIMITED, 12.0),
        (529, "error_overloaded.json", {}, ErrorClass.OVERLOADED, None),
        (503, "error_overloaded.json", {"retry-after": "3"}, ErrorClass.OVERLOADED, 3.0),
        (400, "error_prompt_too_long.json", {}, ErrorClass.CONTEXT_LENGTH_EXCEEDED, None),
        (401, "error_authentication.json", {}, ErrorClass.AUTH, None),
    ],
)
async def test_error_statuses(
    connect: Connect,
    upstream: FakeUpstream,
    status: int,
    name: str,
    headers: dict[str, str],
    error_class: ErrorClass,
    retry_after_s: float | None,
) -> None:
    upstream.reply = json_reply(fixture(name), status, headers)

    with pytest.raises(ProviderError) as caught:
        await connect().complete(HELLO, MODEL)

    error = caught.value
    assert (error.error_class, error.status_code, error.retry_after_s) == (error_class, status, retry_after_s)
    assert API_KEY not in str(error) and API_KEY not in repr(error)


@pytest.mark.parametrize(("fault", "error_class", "causes"), support.TRANSPORT_FAULTS)
async def test_transport_errors_are_translated_once(
    connect: Connect,
    upstream: FakeUpstream,
    fault: str,
    error_class: ErrorClass,
    causes: tuple[type[Exception], ...],
) -> None:
    async with support.faulty(fault, upstream) as client:
        with pytest.raises(ProviderError) as caught:
            await connect(client=client).complete(HELLO, MODEL)

    assert caught.value.error_class is error_class
    assert isinstance(caught.value.__cause__, causes)


# --- streaming ------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [None, 1, 7, 64])
async def test_stream_text(connect: Connect, upstream: FakeUpstream, chunk_size: int | None) -> None:
    upstream.reply = sse_upstream("stream_text.sse", chunk_size)

    events = await collect(connect())

    assert events == [
        TextDelta("Bonjour, "),
        TextDelta("ça va ? 日本"),
        StreamDone(
            FinishReason.STOP, Usage(input_tokens=1025, output_tokens=15, cached_input_tokens=1000), MODEL
        ),
    ]
    assert upstream.sent["stream"] is True
    assert upstream.requests[-1].target == "/v1/messages"


@pytest.mark.parametrize("chunk_size", [None, 1, 13])
async def test_stream_tool_use_with_partial_json(connect: Connect, chunk_size: int | None) -> None:
    events = await collect(connect(sse_upstream("stream_tool_use.sse", chunk_size)))

    assert events == [
        TextDelta("Okay, let me check."),
        ToolCallDelta(index=0, id="toolu_01T1x1fJ34qAmk2tNTrN7Up6", name="get_weather"),
        ToolCallDelta(index=0, arguments_fragment='{"location":'),
        ToolCallDelta(index=0, arguments_fragment=' "San Fra'),
        ToolCallDelta(index=0, arguments_fragment='ncisco, CA"}'),
        ToolCallDelta(index=1, id="toolu_01B7nq3k2vX9mZ4tYw8cRdLf", name="get_time"),
        ToolCallDelta(index=1, arguments_fragment="{}"),  # no arguments streamed: same as unary `{}`
        StreamDone(FinishReason.TOOL_CALLS, Usage(input_tokens=472, output_tokens=89), MODEL),
    ]


async def test_stream_error_event_raises_after_earlier_deltas(connect: Connect) -> None:
    events, error = await collect_until_error(connect(sse_upstream("stream_error.sse", 5)))

    assert events == [TextDelta("Hel")]
    assert error.error_class is ErrorClass.OVERLOADED
    assert "overloaded_error" in error.message


@pytest.mark.parametrize(
    ("kind", "error_class"),
    [
        ("overloaded_error", ErrorClass.OVERLOADED),
        ("rate_limit_error", ErrorClass.RATE_LIMITED),
        ("api_error", ErrorClass.OVERLOADED),
        ("timeout_error", ErrorClass.TIMEOUT),
        ("invalid_request_error", ErrorClass.BAD_RESPONSE),
        (None, ErrorClass.BAD_RESPONSE),
    ],
)
def test_stream_error_event_classes(kind: str | None, error_class: ErrorClass) -> None:
    assert stream_error({"type": "error", "error": {"type": kind, "message": "m"}}).error_class is error_class


async def test_stream_without_message_stop_is_a_connection_error(connect: Connect) -> None:
    events, error = await collect_until_error(connect(sse_upstream("stream_cut.sse", 11)))

    assert events == [TextDelta("Hello")]  # never a StreamDone, though message_delta had a stop_reason
    assert error.error_class is ErrorClass.CONNECTION


async def test_stream_cut_inside_the_terminal_event_is_a_connection_error(
    connect: Connect, upstream: FakeUpstream
) -> None:
    data = fixture("stream_text.sse")
    cut = data[: data.rindex(b'"message_stop"}') + 5]
    upstream.reply = sse_reply(split_every(cut, 9))

    events, error = await collect_until_error(connect())

    assert [e for e in events if isinstance(e, StreamDone)] == []
    assert error.error_class is ErrorClass.CONNECTION


async def test_stream_transport_failure_mid_stream(connect: Connect, upstream: FakeUpstream) -> None:
    data = fixture("stream_text.sse")
    upstream.reply = sse_reply([data[: data.index(b"content_block_stop")]], end="cut")

    events, error = await collect_until_error(connect())

    assert events == [TextDelta("Bonjour, "), TextDelta("ça va ? 日本")]
    assert error.error_class is ErrorClass.CONNECTION
    assert isinstance(error.__cause__, support.CUT_MID_BODY)


async def test_stream_http_error_status(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = sse_reply([fixture("error_rate_limit.json")], 429, headers={"retry-after": "7"})

    events, error = await collect_until_error(connect())

    assert events == []
    assert (error.error_class, error.status_code, error.retry_after_s) == (ErrorClass.RATE_LIMITED, 429, 7.0)
    assert "rate_limit_error" in error.message


async def test_stream_event_with_invalid_json_is_a_bad_response(
    connect: Connect, upstream: FakeUpstream
) -> None:
    upstream.reply = sse_reply([b"event: message_start\ndata: {not json\n\n"])

    _, error = await collect_until_error(connect())

    assert error.error_class is ErrorClass.BAD_RESPONSE


async def test_closing_the_stream_early_closes_the_upstream_response(
    connect: Connect, upstream: FakeUpstream
) -> None:
    # The answer never ends, so only the adapter closing the response ends the connection.
    stream = connect(sse_reply(split_every(fixture("stream_text.sse"), 32), end="hang")).stream(HELLO, MODEL)

    assert await anext(stream) == TextDelta("Bonjour, ")
    await stream.aclose()

    await upstream.wait_disconnect()
    assert upstream.disconnects == 1


async def test_stream_error_status_with_an_unreadable_body_keeps_the_status(
    connect: Connect, upstream: FakeUpstream
) -> None:
    upstream.reply = Reply(503, [b'{"type":"err'], framing="chunked", end="cut")

    _, error = await collect_until_error(connect())

    assert (error.error_class, error.status_code) == (ErrorClass.OVERLOADED, 503)


# --- configuration and request hygiene ------------------------------------------------------


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="base_url"):
        AnthropicAdapter(ProviderEndpoint("anthropic", "anthropic", "api.anthropic.com"), httpx.AsyncClient())


async def test_an_echoed_api_key_is_redacted_from_errors(connect: Connect, upstream: FakeUpstream) -> None:
    body = {
        "type": "error",
        "error": {"type": "authentication_error", "message": f"invalid x-api-key {API_KEY}"},
    }
    upstream.reply = json_reply(json.dumps(body).encode(), 401)

    with pytest.raises(ProviderError) as caught:
        await connect().complete(HELLO, MODEL)

    assert caught.value.error_class is ErrorClass.AUTH
    assert "[redacted]" in caught.value.message
    assert API_KEY not in caught.value.message


async def test_a_request_that_is_not_valid_json_fails_before_sending(
    connect: Connect, upstream: FakeUpstream
) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))
    request = ChatRequest(HELLO.messages, params=GenerationParams(temperature=float("nan")))

    with pytest.raises(ProviderError) as caught:
        await connect().complete(request, MODEL)

    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert upstream.requests == []


async def test_read_only_tool_schemas_are_encoded(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = json_reply(fixture("message_text.json"))
    schema = MappingProxyType(
        {"type": "object", "properties": MappingProxyType({"q": MappingProxyType({"type": "string"})})}
    )

    await connect().complete(
        ChatRequest(HELLO.messages, tools=(ToolSpec("search", parameters=schema),)), MODEL
    )

    assert upstream.sent["tools"] == [
        {"name": "search", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    ]
