"""Gemini generateContent adapter: the JSON it sends, and what it makes of recorded answers, streams
and errors (fixtures/gemini/, served byte-exact by the fake upstream over loopback)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

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
from router_service.providers.base import ProviderEndpoint
from router_service.providers.gemini import GeminiAdapter, stream_error
from tests.providers import support
from tests.providers.support import adapter_factory
from tests.providers.upstream import Ending, FakeUpstream, Headers, Reply, split_every, sse_reply, sse_stream

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
API_KEY = "AIza-test-key-do-not-leak"
MODEL = "gemini-2.5-flash"
BASE_URL = "https://generativelanguage.test"
HELLO = ChatRequest(messages=(Message(Role.USER, "Hello"),))
WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
        "additionalProperties": False,
    },
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def answer(body: bytes, status: int = 200, headers: Headers = ()) -> Reply:
    """An answer with the JSON content type the Gemini API sends."""
    pairs = tuple(headers.items()) if isinstance(headers, dict) else tuple(headers)
    return Reply(status, body, (("content-type", "application/json; charset=UTF-8"), *pairs))


Connect = Callable[..., GeminiAdapter]


@pytest.fixture
def connect(upstream: FakeUpstream, client: httpx.AsyncClient) -> Connect:
    endpoint = ProviderEndpoint("gemini", "gemini", BASE_URL + "/", API_KEY)
    return adapter_factory(upstream, client, GeminiAdapter, endpoint)


def sse_upstream(name: str, chunk_size: int | None = None, end: Ending = "finish") -> Reply:
    return sse_stream(fixture(name), chunk_size, end)


async def collect(adapter: GeminiAdapter, request: ChatRequest = HELLO) -> list[StreamEvent]:
    return await support.collect(adapter, request, MODEL)


async def collect_until_error(
    adapter: GeminiAdapter, request: ChatRequest = HELLO
) -> tuple[list[StreamEvent], ProviderError]:
    return await support.collect_until_error(adapter, request, MODEL)


# --- request mapping ------------------------------------------------------------------------


async def test_request_maps_system_roles_function_calls_and_config(
    connect: Connect, upstream: FakeUpstream
) -> None:
    upstream.reply = answer(fixture("generate_text.json"))
    request = ChatRequest(
        messages=(
            Message(Role.SYSTEM, "You are terse."),
            Message(Role.USER, "Weather and time in SF?"),
            Message(Role.SYSTEM, "Use metric units."),
            Message(
                Role.ASSISTANT,
                "Checking.",
                tool_calls=(
                    ToolCall("call_0", "get_weather", '{"location": "SF"}'),
                    ToolCall("call_1", "get_time", ""),
                ),
            ),
            Message(Role.TOOL, '{"temp_c": 18}', tool_call_id="call_0"),
            Message(Role.TOOL, "09:30", tool_call_id="call_1"),
            Message(Role.USER, "And tomorrow?"),
            Message(Role.ASSISTANT, "Let me see"),
            Message(Role.ASSISTANT, ""),
        ),
        params=GenerationParams(
            temperature=0.2, top_p=0.9, max_output_tokens=300, stop_sequences=("END",), seed=7
        ),
        tools=(WEATHER_TOOL, ToolSpec(name="get_time")),
        tool_choice=ToolChoice(ToolChoiceMode.AUTO),
    )

    await connect().complete(request, MODEL)

    assert upstream.sent == {
        "systemInstruction": {"parts": [{"text": "You are terse.\n\nUse metric units."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Weather and time in SF?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"location": "SF"}}},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
                    {"functionResponse": {"name": "get_time", "response": {"result": "09:30"}}},
                    {"text": "And tomorrow?"},
                ],
            },
            {"role": "model", "parts": [{"text": "Let me see"}]},
        ],
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 300,
            "stopSequences": ["END"],
            "seed": 7,
        },
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather for a city",
                        "parametersJsonSchema": dict(WEATHER_TOOL.parameters),
                    },
                    {"name": "get_time"},
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    }


async def test_url_and_headers_keep_the_key_out_of_the_url(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = answer(fixture("generate_text.json"))

    await connect(headers={"x-goog-user-project": "proj"}).complete(HELLO, MODEL)

    sent = upstream.requests[-1]
    assert sent.method == "POST"
    assert sent.target == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == API_KEY
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-goog-user-project"] == "proj"
    assert API_KEY not in sent.target
    assert upstream.sent == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}


async def test_model_prefix_and_api_version_option(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = answer(fixture("generate_text.json"))

    await connect(options={"api_version": "v1"}).complete(HELLO, "models/gemini-2.5-pro")

    assert upstream.requests[-1].target == "/v1/models/gemini-2.5-pro:generateContent"


async def test_tool_result_names_follow_the_latest_call_with_that_id(
    connect: Connect, upstream: FakeUpstream
) -> None:
    # Synthesized ids restart at call_0 on every Gemini answer, so ids repeat across turns.
    upstream.reply = answer(fixture("generate_text.json"))
    request = ChatRequest(
        messages=(
            Message(Role.USER, "q"),
            Message(Role.ASSISTANT, "", tool_calls=(ToolCall("call_0", "first", "{}"),)),
            Message(Role.TOOL, "[1, 2]", tool_call_id="call_0"),
            Message(Role.ASSISTANT, "", tool_calls=(ToolCall("call_0", "second", "{}"),)),
            Message(Role.TOOL, "ok", tool_call_id="call_0"),
            Message(Role.TOOL, "named", tool_call_id="unknown", name="by_name"),
        )
    )

    await connect().complete(request, MODEL)

    responses = [
        part["functionResponse"]
        for c in upstream.sent["contents"]
        for part in c["parts"]
        if "functionResponse" in part
    ]
    assert responses == [
        {"name": "first", "response": {"result": "[1, 2]"}},
        {"name": "second", "response": {"result": "ok"}},
        {"name": "by_name", "response": {"result": "named"}},
    ]


async def test_tool_result_without_a_matching_call_is_rejected_before_sending(
    connect: Connect, upstream: FakeUpstream
) -> None:
    upstream.reply = answer(fixture("generate_text.json"))
    request = ChatRequest((*HELLO.messages, Message(Role.TOOL, "x", tool_call_id="call_9")))

    with pytest.raises(ProviderError) as caught:
        await connect().complete(request, MODEL)

    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert "messages[1]" in caught.value.message
    assert upstream.requests == []


async def test_tool_call_arguments_that_are_not_an_object_are_rejected(
    connect: Connect, upstream: FakeUpstream
) -> None:
    upstream.reply = answer(fixture("generate_text.json"))
    request = ChatRequest(
        (*HELLO.messages, Message(Role.ASSISTANT, "", tool_calls=(ToolCall("c", "f", "[1]"),)))
    )

    with pytest.raises(ProviderError) as caught:
        await connect().complete(request, MODEL)

    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (ToolChoice(ToolChoiceMode.AUTO), {"mode": "AUTO"}),
        (ToolChoice(ToolChoiceMode.NONE), {"mode": "NONE"}),
        (ToolChoice(ToolChoiceMode.REQUIRED), {"mode": "ANY"}),
        (
            ToolChoice(ToolChoiceMode.FUNCTION, "get_weather"),
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
async def test_tool_choice(
    connect: Connect, upstream: FakeUpstream, choice: ToolChoice, wire: dict[str, Any]
) -> None:
    upstream.reply = answer(fixture("generate_text.json"))

    await connect().complete(ChatRequest(HELLO.messages, tools=(WEATHER_TOOL,), tool_choice=choice), MODEL)

    assert upstream.sent["toolConfig"] == {"functionCallingConfig": wire}


async def test_tool_config_is_not_sent_without_tools(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = answer(fixture("generate_text.json"))

    await connect().complete(ChatRequest(HELLO.messages, tool_choice=ToolChoice(ToolChoiceMode.NONE)), MODEL)

    assert "toolConfig" not in upstream.sent
    assert "tools" not in upstream.sent


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    ("response_format", "config"),
    [
        (ResponseFormat(ResponseFormatType.TEXT), None),
        (ResponseFormat(ResponseFormatType.JSON_OBJECT), {"responseMimeType": "application/json"}),
        (
            ResponseFormat(ResponseFormatType.JSON_SCHEMA, json_schema=SCHEMA, schema_name="city"),
            {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA},
        ),
    ],
)
async def test_json_modes(
    connect: Connect, upstream: FakeUpstream, response_format: ResponseFormat, config: dict[str, Any] | None
) -> None:
    upstream.reply = answer(fixture("generate_text.json"))

    await connect().complete(ChatRequest(HELLO.messages, response_format=response_format), MODEL)

    assert upstream.sent.get("generationConfig") == config


# --- unary responses ------------------------------------------------------------------------


async def test_unary_text_answer(connect: Connect) -> None:
    result = await connect(answer(fixture("generate_text.json"))).complete(HELLO, "gemini-flash-latest")

    assert result.message == Message(
        Role.ASSISTANT, "Hello! How can I help you today?"
    )  # thought part skipped
    assert result.finish_reason is FinishReason.STOP
    # promptTokenCount already includes cached tokens; thinking tokens are output.
    assert result.usage == Usage(input_tokens=1200, output_tokens=9 + 32, cached_input_tokens=1024)
    assert result.upstream_model == "gemini-2.5-flash"
    assert result.response_id == "mAitaLmkHPPlz7IPvtfUqQ4"


async def test_unary_function_calls_get_deterministic_ids(connect: Connect) -> None:
    result = await connect(answer(fixture("generate_function_call.json"))).complete(HELLO, MODEL)

    assert result.message == Message(
        Role.ASSISTANT,
        "",
        tool_calls=(
            ToolCall("call_0", "get_weather", '{"location":"San Francisco, CA","unit":"celsius"}'),
            ToolCall("call_1", "get_time", "{}"),
        ),
    )
    assert result.finish_reason is FinishReason.TOOL_CALLS
    assert result.usage == Usage(input_tokens=96, output_tokens=24)


async def test_unary_safety_stop_is_a_content_filter_finish(connect: Connect) -> None:
    result = await connect(answer(fixture("generate_safety.json"))).complete(HELLO, MODEL)

    assert result.finish_reason is FinishReason.CONTENT_FILTER
    assert result.message == Message(Role.ASSISTANT, "")


async def test_blocked_prompt_raises_content_filtered(connect: Connect) -> None:
    with pytest.raises(ProviderError) as caught:
        await connect(answer(fixture("prompt_blocked.json"))).complete(HELLO, MODEL)

    assert caught.value.error_class is ErrorClass.CONTENT_FILTERED
    assert "SAFETY" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("STOP", FinishReason.STOP),
        ("MAX_TOKENS", FinishReason.LENGTH),
        ("SAFETY", FinishReason.CONTENT_FILTER),
        ("RECITATION", FinishReason.CONTENT_FILTER),
        ("BLOCKLIST", FinishReason.CONTENT_FILTER),
        ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER),
        ("SPII", FinishReason.CONTENT_FILTER),
        ("MALFORMED_FUNCTION_CALL", FinishReason.UNKNOWN),
        ("OTHER", FinishReason.UNKNOWN),
    ],
)
async def test_finish_reasons(connect: Connect, raw: str, expected: FinishReason) -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "x"}], "role": "model"}, "finishReason": raw}]}
    result = await connect(answer(json.dumps(body).encode())).complete(HELLO, MODEL)

    assert result.finish_reason is expected
    assert result.upstream_model == MODEL  # no modelVersion in the answer: the requested model


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"<html>bad gateway</html>", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"usageMetadata": {"promptTokenCount": 3}}', "no candidates"),
        (b'{"candidates": [{"content": {"parts": [{"functionCall": {"args": {}}}]}}]}', "functionCall"),
    ],
)
async def test_malformed_success_body_is_a_bad_response(connect: Connect, body: bytes, what: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await connect(answer(body)).complete(HELLO, MODEL)

    assert caught.value.error_class is ErrorClass.BAD_RESPONSE
    assert what in caught.value.message


# --- HTTP and transport errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "headers", "error_class", "retry_after_s"),
    [
        (429, "error_rate_limit.json", {}, ErrorClass.RATE_LIMITED, 17.0),  # from RetryInfo.retryDelay
        (429, "error_rate_limit.json", {"retry-after": "5"}, ErrorClass.RATE_LIMITED, 5.0),  # header wins
        (503, "error_unavailable.json", {}, ErrorClass.OVERLOADED, None),
        (400, "error_token_limit.json", {}, ErrorClass.CONTEXT_LENGTH_EXCEEDED, None),
        (400, "error_api_key.json", {}, ErrorClass.AUTH, None),
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
    upstream.reply = answer(fixture(name), status, headers)

    with pytest.raises(ProviderError) as caught:
        await connect().complete(HELLO, MODEL)

    error = caught.value
    assert (error.error_class, error.status_code, error.retry_after_s) == (error_class, status, retry_after_s)
    assert API_KEY not in str(error) and API_KEY not in repr(error)


async def test_non_json_error_body_still_maps_by_status(connect: Connect) -> None:
    with pytest.raises(ProviderError) as caught:
        await connect(answer(b"<html>Bad Gateway</html>", 502)).complete(HELLO, MODEL)

    assert (caught.value.error_class, caught.value.retry_after_s) == (ErrorClass.OVERLOADED, None)


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
            FinishReason.STOP,
            Usage(input_tokens=8, output_tokens=12 + 25, cached_input_tokens=4),
            "gemini-2.5-flash",
        ),
    ]
    sent = upstream.requests[-1]
    assert sent.target == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert sent.headers["x-goog-api-key"] == API_KEY
    assert upstream.sent == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}


@pytest.mark.parametrize("chunk_size", [None, 1, 13])
async def test_stream_function_calls(connect: Connect, chunk_size: int | None) -> None:
    events = await collect(connect(sse_upstream("stream_function_call.sse", chunk_size)))

    assert events == [
        TextDelta("Let me check."),
        ToolCallDelta(
            index=0,
            id="call_0",
            name="get_weather",
            arguments_fragment='{"location":"San Francisco, CA","unit":"celsius"}',
        ),
        ToolCallDelta(index=1, id="call_1", name="get_time", arguments_fragment='{"tz":"UTC"}'),
        StreamDone(FinishReason.TOOL_CALLS, Usage(input_tokens=96, output_tokens=31), "gemini-2.5-flash"),
    ]


async def test_stream_error_chunk_raises_after_earlier_deltas(connect: Connect) -> None:
    events, error = await collect_until_error(connect(sse_upstream("stream_error.sse", 5)))

    assert events == [TextDelta("Hel")]
    assert error.error_class is ErrorClass.OVERLOADED
    assert "UNAVAILABLE" in error.message


@pytest.mark.parametrize(
    ("error", "error_class"),
    [
        ({"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota"}, ErrorClass.RATE_LIMITED),
        ({"code": 500, "status": "INTERNAL", "message": "internal"}, ErrorClass.OVERLOADED),
        (
            {
                "code": 400,
                "status": "INVALID_ARGUMENT",
                "message": "The input token count (9) exceeds the maximum number of tokens allowed (8).",
            },
            ErrorClass.CONTEXT_LENGTH_EXCEEDED,
        ),
        ({"status": "UNKNOWN"}, ErrorClass.BAD_RESPONSE),
        ("not an object", ErrorClass.BAD_RESPONSE),
    ],
)
def test_stream_error_classes(error: object, error_class: ErrorClass) -> None:
    assert stream_error(error).error_class is error_class


async def test_stream_without_finish_reason_is_a_connection_error(connect: Connect) -> None:
    events, error = await collect_until_error(connect(sse_upstream("stream_cut.sse", 11)))

    assert events == [TextDelta("Hello"), TextDelta(", wor")]  # never a StreamDone
    assert error.error_class is ErrorClass.CONNECTION


async def test_stream_cut_inside_the_final_chunk_is_a_connection_error(
    connect: Connect, upstream: FakeUpstream
) -> None:
    data = fixture("stream_text.sse")
    cut = data[: data.rindex(b'"finishReason"') + 20]
    upstream.reply = sse_reply(split_every(cut, 9))

    events, error = await collect_until_error(connect())

    assert events == [TextDelta("Bonjour, "), TextDelta("ça va ? 日本")]
    assert error.error_class is ErrorClass.CONNECTION


async def test_stream_transport_failure_mid_stream(connect: Connect) -> None:
    events, error = await collect_until_error(connect(sse_upstream("stream_cut.sse", 64, end="cut")))

    assert events == [TextDelta("Hello"), TextDelta(", wor")]
    assert error.error_class is ErrorClass.CONNECTION
    assert isinstance(error.__cause__, support.CUT_MID_BODY)


async def test_stream_blocked_prompt_raises_content_filtered(connect: Connect) -> None:
    events, error = await collect_until_error(connect(sse_upstream("stream_prompt_blocked.sse")))

    assert events == []
    assert error.error_class is ErrorClass.CONTENT_FILTERED
    assert "PROHIBITED_CONTENT" in error.message


async def test_stream_http_error_status(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = sse_reply(split_every(fixture("error_rate_limit.json"), 100), 429)

    events, error = await collect_until_error(connect())

    assert events == []
    assert (error.error_class, error.status_code, error.retry_after_s) == (ErrorClass.RATE_LIMITED, 429, 17.0)


async def test_stream_chunk_with_invalid_json_is_a_bad_response(
    connect: Connect, upstream: FakeUpstream
) -> None:
    upstream.reply = sse_reply([b"data: {not json\r\n\r\n"])

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
    upstream.reply = Reply(503, [b'{"error":'], framing="chunked", end="cut")

    _, error = await collect_until_error(connect())

    assert (error.error_class, error.status_code) == (ErrorClass.OVERLOADED, 503)


# --- configuration and request hygiene ------------------------------------------------------


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="base_url"):
        GeminiAdapter(
            ProviderEndpoint("gemini", "gemini", "generativelanguage.googleapis.com"), httpx.AsyncClient()
        )


async def test_an_echoed_api_key_is_redacted_from_errors(connect: Connect, upstream: FakeUpstream) -> None:
    body = {
        "error": {"code": 403, "message": f"Key {API_KEY} is not allowed here", "status": "PERMISSION_DENIED"}
    }
    upstream.reply = answer(json.dumps(body).encode(), 403)

    with pytest.raises(ProviderError) as caught:
        await connect().complete(HELLO, MODEL)

    assert caught.value.error_class is ErrorClass.AUTH
    assert "[redacted]" in caught.value.message
    assert API_KEY not in caught.value.message


async def test_a_request_that_is_not_valid_json_fails_before_sending(
    connect: Connect, upstream: FakeUpstream
) -> None:
    upstream.reply = answer(fixture("generate_text.json"))
    request = ChatRequest(HELLO.messages, params=GenerationParams(top_p=float("inf")))

    with pytest.raises(ProviderError) as caught:
        await connect().complete(request, MODEL)

    assert caught.value.error_class is ErrorClass.INVALID_REQUEST
    assert upstream.requests == []


async def test_read_only_schemas_are_encoded(connect: Connect, upstream: FakeUpstream) -> None:
    upstream.reply = answer(fixture("generate_text.json"))
    schema = MappingProxyType(
        {"type": "object", "properties": MappingProxyType({"q": MappingProxyType({"type": "string"})})}
    )
    request = ChatRequest(
        HELLO.messages,
        tools=(ToolSpec("search", parameters=schema),),
        response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, json_schema=schema),
    )

    await connect().complete(request, MODEL)

    plain = {"type": "object", "properties": {"q": {"type": "string"}}}
    assert upstream.sent["tools"] == [
        {"functionDeclarations": [{"name": "search", "parametersJsonSchema": plain}]}
    ]
    assert upstream.sent["generationConfig"]["responseJsonSchema"] == plain
