"""OpenAIAdapter on recorded Chat Completions traffic, served by the fake upstream over loopback."""

from __future__ import annotations

import json
import re
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from router_service.domain import (
    ChatRequest,
    ChatResult,
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
from router_service.providers.openai import OpenAIAdapter, from_wire, to_wire
from tests.providers import support
from tests.providers.upstream import FakeUpstream, Reply, json_reply, recorded_reply, split_every, sse_reply

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
API_KEY = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
HI = ChatRequest(messages=(Message(Role.USER, "Hi"),))
WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)


# --- test plumbing ------------------------------------------------------------------------------


Connect = Callable[..., OpenAIAdapter]


@pytest.fixture
def connect(upstream: FakeUpstream, client: httpx.AsyncClient) -> Connect:
    """`connect(**endpoint_fields)`: an adapter on `upstream`; a `base_url` keeps only its path."""

    def make(*, client: httpx.AsyncClient = client, **endpoint_fields: Any) -> OpenAIAdapter:
        fields: dict[str, Any] = {"name": "openai", "kind": "openai", "api_key": API_KEY}
        fields.update(endpoint_fields)
        fields["base_url"] = upstream.url + urlsplit(fields.get("base_url", "https://api.openai.com/v1")).path
        return OpenAIAdapter(ProviderEndpoint(**fields), client)

    return make


def fixture_reply(name: str) -> Reply:
    return json_reply((FIXTURES / name).read_bytes())


def sse_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sse_of(*data: str) -> bytes:
    return b"".join(f"data: {d}\n\n".encode() for d in data)


async def collect(adapter: OpenAIAdapter, request: ChatRequest = HI) -> list[StreamEvent]:
    return await support.collect(adapter, request, "gpt-4o-mini")


async def collect_until_error(
    adapter: OpenAIAdapter, request: ChatRequest = HI
) -> tuple[list[StreamEvent], ProviderError]:
    return await support.collect_until_error(adapter, request, "gpt-4o-mini")


async def call(adapter: OpenAIAdapter, mode: str) -> None:
    if mode == "complete":
        await adapter.complete(HI, "gpt-4o-mini")
    else:
        await collect(adapter)


# --- unary --------------------------------------------------------------------------------------


async def test_complete_parses_a_text_answer_and_sends_minimal_request(
    upstream: FakeUpstream, connect: Connect
) -> None:
    upstream.reply = fixture_reply("chat_completion_text.json")

    result = await connect().complete(HI, "gpt-4.1")

    assert result == ChatResult(
        message=Message(Role.ASSISTANT, "Hello! How can I assist you today?"),
        finish_reason=FinishReason.STOP,
        usage=Usage(input_tokens=19, output_tokens=10, cached_input_tokens=0),
        upstream_model="gpt-4.1-2025-04-14",
        response_id="chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    )
    sent = upstream.requests[0]
    assert (sent.method, sent.target) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"] == "application/json"
    # Unset parameters are omitted, and a unary call asks for no stream.
    assert upstream.sent == {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Hi"}]}


async def test_complete_parses_tool_calls_and_cached_tokens(upstream: FakeUpstream, connect: Connect) -> None:
    upstream.reply = fixture_reply("chat_completion_tool_calls.json")

    result = await connect().complete(HI, "gpt-4o-mini")

    assert result.message == Message(
        Role.ASSISTANT,
        "",
        tool_calls=(ToolCall("call_abc123", "get_current_weather", '{\n"location": "Boston, MA"\n}'),),
    )
    assert result.finish_reason is FinishReason.TOOL_CALLS
    assert result.usage == Usage(input_tokens=82, output_tokens=17, cached_input_tokens=64)


async def test_content_filtered_200_is_a_result_not_an_error(
    upstream: FakeUpstream, connect: Connect
) -> None:
    body = json.loads((FIXTURES / "chat_completion_text.json").read_bytes())
    body["choices"][0]["message"]["content"] = None
    body["choices"][0]["finish_reason"] = "content_filter"
    upstream.reply = json_reply(body)

    result = await connect().complete(HI, "gpt-4o-mini")

    assert result.finish_reason is FinishReason.CONTENT_FILTER
    assert result.message.content == ""


@pytest.mark.parametrize(
    ("endpoint_fields", "url", "expected_headers", "absent_headers"),
    [
        pytest.param(
            {"base_url": "https://api.openai.com/v1/"},
            "/v1/chat/completions",
            {"authorization": f"Bearer {API_KEY}"},
            ["api-key"],
            id="openai-trailing-slash",
        ),
        pytest.param(
            {
                "base_url": "https://myres.openai.azure.com/openai/deployments/gpt-4o",
                "options": {"auth": "azure", "api_version": "2024-10-21"},
            },
            "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
            {"api-key": API_KEY},
            ["authorization"],
            id="azure",
        ),
        pytest.param(
            {"base_url": "http://127.0.0.1:11434/v1", "api_key": ""},
            "/v1/chat/completions",
            {},
            ["authorization", "api-key"],
            id="ollama-without-key",
        ),
        pytest.param(
            {"headers": {"OpenAI-Organization": "org-123", "X-Title": "router"}},
            "/v1/chat/completions",
            {"openai-organization": "org-123", "x-title": "router", "authorization": f"Bearer {API_KEY}"},
            ["api-key"],
            id="extra-headers",
        ),
    ],
)
@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_url_and_auth_headers(
    upstream: FakeUpstream,
    connect: Connect,
    mode: str,
    endpoint_fields: dict[str, Any],
    url: str,
    expected_headers: dict[str, str],
    absent_headers: list[str],
) -> None:
    streaming = mode == "stream"
    upstream.reply = (
        sse_reply([sse_bytes("stream_text.sse")]) if streaming else fixture_reply("chat_completion_text.json")
    )

    await call(connect(**endpoint_fields), mode)

    sent = upstream.requests[0]
    assert sent.target == url
    for name, value in expected_headers.items():
        assert sent.headers[name] == value
    for name in absent_headers:
        assert name not in sent.headers


def test_non_http_base_url_fails_at_construction() -> None:
    endpoint = ProviderEndpoint(name="bad", kind="openai", base_url="localhost:8000/v1")
    with pytest.raises(ValueError, match="http"):
        OpenAIAdapter(endpoint, httpx.AsyncClient())


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"[1, 2]", b"\xff\xfe", b""])
async def test_unparseable_200_body_is_bad_response(
    upstream: FakeUpstream, connect: Connect, body: bytes
) -> None:
    upstream.reply = Reply(200, body)

    with pytest.raises(ProviderError) as info:
        await connect().complete(HI, "gpt-4o-mini")

    assert info.value.error_class is ErrorClass.BAD_RESPONSE


# --- HTTP and transport errors, on both paths ----------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "error_class", "status", "retry_after_s"),
    [
        ("error_429_rate_limit.http", ErrorClass.RATE_LIMITED, 429, 20.0),
        ("error_400_context_length.http", ErrorClass.CONTEXT_LENGTH_EXCEEDED, 400, None),
        ("error_500.http", ErrorClass.OVERLOADED, 500, None),
    ],
)
@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_http_errors_are_classified(
    upstream: FakeUpstream,
    connect: Connect,
    mode: str,
    fixture: str,
    error_class: ErrorClass,
    status: int,
    retry_after_s: float | None,
) -> None:
    upstream.reply = recorded_reply(FIXTURES / fixture)

    with pytest.raises(ProviderError) as info:
        await call(connect(), mode)

    error = info.value
    assert (error.error_class, error.status_code, error.retry_after_s) == (error_class, status, retry_after_s)
    assert error.message.startswith(f"HTTP {status}: ")


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_api_key_echoed_by_upstream_is_redacted(
    upstream: FakeUpstream, connect: Connect, mode: str
) -> None:
    body = {"error": {"message": f"Invalid API key: {API_KEY}", "type": "invalid_request_error"}}
    upstream.reply = json_reply(body, 401)

    with pytest.raises(ProviderError) as info:
        await call(connect(), mode)

    assert info.value.error_class is ErrorClass.AUTH
    assert "[redacted]" in info.value.message
    assert API_KEY not in f"{info.value} {info.value!r} {info.value.message}"


async def test_stream_error_body_is_read_only_up_to_a_bound(upstream: FakeUpstream, connect: Connect) -> None:
    offered = 64 << 20  # generated lazily; what the server got out is bounded by the socket buffers
    upstream.reply = Reply(503, (b"x" * 16384 for _ in range(offered // 16384)), framing="chunked")

    _, error = await collect_until_error(connect())

    assert error.error_class is ErrorClass.OVERLOADED
    await upstream.wait_disconnect()  # the client stopped reading and closed the connection
    assert upstream.body_bytes_sent < offered // 4
    assert len(error.message) <= len("HTTP 503: ") + 300


@pytest.mark.parametrize(("fault", "error_class", "causes"), support.TRANSPORT_FAULTS)
@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_transport_errors_become_provider_errors(
    upstream: FakeUpstream,
    connect: Connect,
    mode: str,
    fault: str,
    error_class: ErrorClass,
    causes: tuple[type[Exception], ...],
) -> None:
    async with support.faulty(fault, upstream) as client:
        with pytest.raises(ProviderError) as info:
            await call(connect(client=client), mode)

    assert info.value.error_class is error_class
    assert isinstance(info.value.__cause__, causes)  # translated once, at the edge, keeping the original


async def test_unserializable_request_fails_before_any_call(upstream: FakeUpstream, connect: Connect) -> None:
    request = ChatRequest(messages=HI.messages, params=GenerationParams(temperature=float("nan")))

    with pytest.raises(ProviderError) as info:
        await connect().complete(request, "gpt-4o-mini")

    assert info.value.error_class is ErrorClass.INVALID_REQUEST
    assert upstream.requests == []


# --- from_wire ----------------------------------------------------------------------------------


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / "chat_completion_tool_calls.json").read_bytes())
    body.update(overrides)
    return body


def _with_message(**message: Any) -> dict[str, Any]:
    return _body(choices=[{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}])


def _with_tool_call(call: Any) -> dict[str, Any]:
    return _with_message(content=None, tool_calls=[call])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_body(choices=None), id="choices-missing"),
        pytest.param(_body(choices=[]), id="choices-empty"),
        pytest.param(_body(choices={"0": {}}), id="choices-not-list"),
        pytest.param(_body(choices=["text"]), id="choice-not-object"),
        pytest.param(_body(choices=[{"index": 0, "finish_reason": "stop"}]), id="message-missing"),
        pytest.param(_with_message(content=42), id="content-number"),
        pytest.param(_with_message(content=[{"type": "text", "text": 1}]), id="content-part-text-number"),
        pytest.param(_with_message(content="", tool_calls={"id": "x"}), id="tool-calls-not-list"),
        pytest.param(
            _with_tool_call({"type": "function", "function": {"name": "f", "arguments": "{}"}}),
            id="tool-call-no-id",
        ),
        pytest.param(_with_tool_call({"id": "call_1", "type": "function"}), id="tool-call-no-function"),
        pytest.param(
            _with_tool_call({"id": "call_1", "function": {"arguments": "{}"}}), id="tool-call-no-name"
        ),
        pytest.param(
            _with_tool_call({"id": "call_1", "function": {"name": "f", "arguments": {"a": 1}}}),
            id="arguments-not-string",
        ),
        pytest.param(
            _body(choices=[{"index": 0, "message": {"content": "x"}, "finish_reason": 1}]),
            id="finish-reason-number",
        ),
        pytest.param(_body(usage="82 tokens"), id="usage-string"),
        pytest.param(
            _body(usage={"prompt_tokens": "82", "completion_tokens": 17}), id="prompt-tokens-string"
        ),
        pytest.param(_body(usage={"prompt_tokens": True}), id="prompt-tokens-bool"),
        pytest.param(
            _body(usage={"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": 1.5}}),
            id="cached-float",
        ),
        pytest.param(_body(model=4), id="model-number"),
    ],
)
def test_from_wire_rejects_malformed_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(ProviderError) as info:
        from_wire(body)

    assert info.value.error_class is ErrorClass.BAD_RESPONSE
    assert info.value.message.startswith("malformed upstream response: ")


@pytest.mark.parametrize(
    ("wire", "finish_reason"),
    [
        ("stop", FinishReason.STOP),
        ("length", FinishReason.LENGTH),
        ("model_length", FinishReason.LENGTH),
        ("tool_calls", FinishReason.TOOL_CALLS),
        ("function_call", FinishReason.TOOL_CALLS),
        ("content_filter", FinishReason.CONTENT_FILTER),
        ("insufficient_system_resource", FinishReason.UNKNOWN),
        (None, FinishReason.UNKNOWN),
    ],
)
def test_from_wire_maps_finish_reasons(wire: str | None, finish_reason: FinishReason) -> None:
    body = _body(choices=[{"index": 0, "message": {"content": "x"}, "finish_reason": wire}])

    assert from_wire(body).finish_reason is finish_reason


@pytest.mark.parametrize(
    ("message", "content"),
    [
        pytest.param({"content": "plain"}, "plain", id="string"),
        pytest.param(
            {"content": None, "refusal": "I can't help with that."}, "I can't help with that.", id="refusal"
        ),
        pytest.param(
            {
                "content": [
                    {"type": "thinking", "thinking": []},
                    {"type": "text", "text": "4"},
                    {"type": "text", "text": "2"},
                ]
            },
            "42",
            id="mistral-typed-parts",
        ),
        pytest.param({}, "", id="absent"),
    ],
)
def test_from_wire_reads_assistant_text(message: dict[str, Any], content: str) -> None:
    assert from_wire(_with_message(**message)).message.content == content


def test_from_wire_counts_absent_usage_as_zero() -> None:
    body = _body()
    del body["usage"]

    assert from_wire(body).usage == Usage()


# --- to_wire ------------------------------------------------------------------------------------


def test_to_wire_maps_a_tool_conversation() -> None:
    call = ToolCall("call_1", "get_weather", '{"location":"Paris"}')
    request = ChatRequest(
        messages=(
            Message(Role.SYSTEM, "Be brief."),
            Message(Role.USER, "Weather in Paris?", name="alice"),
            Message(Role.ASSISTANT, "", tool_calls=(call,)),
            Message(Role.TOOL, '{"temp_c": 18}', tool_call_id="call_1", name="get_weather"),
            Message(Role.ASSISTANT, "18 °C."),
        )
    )

    assert to_wire(request, "gpt-4o", False)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?", "name": "alice"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"temp_c": 18}', "tool_call_id": "call_1", "name": "get_weather"},
        {"role": "assistant", "content": "18 °C."},
    ]


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (None, None),
        (ToolChoice(ToolChoiceMode.AUTO), "auto"),
        (ToolChoice(ToolChoiceMode.NONE), "none"),
        (ToolChoice(ToolChoiceMode.REQUIRED), "required"),
        (
            ToolChoice(ToolChoiceMode.FUNCTION, "get_weather"),
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_to_wire_maps_tools_and_tool_choice(choice: ToolChoice | None, wire: object) -> None:
    bare = ToolSpec(name="now")
    request = ChatRequest(messages=HI.messages, tools=(WEATHER_TOOL, bare), tool_choice=choice)

    body = to_wire(request, "gpt-4o", False)

    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": dict(WEATHER_TOOL.parameters),
            },
        },
        {"type": "function", "function": {"name": "now"}},
    ]
    assert body.get("tool_choice") == wire


def test_to_wire_drops_tool_choice_without_tools() -> None:
    request = ChatRequest(messages=HI.messages, tool_choice=ToolChoice(ToolChoiceMode.NONE))

    assert to_wire(request, "gpt-4o", False) == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hi"}],
    }


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    ("response_format", "wire"),
    [
        (ResponseFormat(ResponseFormatType.TEXT), {"type": "text"}),
        (ResponseFormat(ResponseFormatType.JSON_OBJECT), {"type": "json_object"}),
        (
            ResponseFormat(ResponseFormatType.JSON_SCHEMA, SCHEMA, "city"),
            {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
        ),
        (
            ResponseFormat(ResponseFormatType.JSON_SCHEMA, SCHEMA),
            {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA, "strict": True}},
        ),
    ],
)
def test_to_wire_maps_response_format(response_format: ResponseFormat, wire: dict[str, Any]) -> None:
    request = ChatRequest(messages=HI.messages, response_format=response_format)

    assert to_wire(request, "gpt-4o", False)["response_format"] == wire


def test_to_wire_rejects_json_schema_without_schema() -> None:
    request = ChatRequest(
        messages=HI.messages, response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA)
    )

    with pytest.raises(ProviderError) as info:
        to_wire(request, "gpt-4o", False)

    assert info.value.error_class is ErrorClass.INVALID_REQUEST


FULL_PARAMS = GenerationParams(
    temperature=0.2, top_p=0.9, max_output_tokens=256, stop_sequences=("END",), seed=7
)


@pytest.mark.parametrize(
    ("params", "field", "wire"),
    [
        (GenerationParams(), "max_tokens", {}),
        (
            FULL_PARAMS,
            "max_tokens",
            {"temperature": 0.2, "top_p": 0.9, "max_tokens": 256, "stop": ["END"], "seed": 7},
        ),
        (
            FULL_PARAMS,
            "max_completion_tokens",
            {"temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 256, "stop": ["END"], "seed": 7},
        ),
        (GenerationParams(temperature=0.0), "max_tokens", {"temperature": 0.0}),
    ],
)
def test_to_wire_sends_only_set_params(params: GenerationParams, field: str, wire: dict[str, Any]) -> None:
    body = to_wire(ChatRequest(messages=HI.messages, params=params), "gpt-4o", False, max_tokens_field=field)

    assert {k: v for k, v in body.items() if k not in ("model", "messages")} == wire


def test_to_wire_asks_a_stream_for_usage() -> None:
    body = to_wire(HI, "gpt-4o", True)

    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})


@pytest.mark.parametrize(
    ("options", "sent_field"),
    [({}, "max_tokens"), ({"max_tokens_field": "max_completion_tokens"}, "max_completion_tokens")],
)
async def test_endpoint_option_picks_max_tokens_field(
    upstream: FakeUpstream, connect: Connect, options: dict[str, str], sent_field: str
) -> None:
    upstream.reply = fixture_reply("chat_completion_text.json")
    request = ChatRequest(messages=HI.messages, params=GenerationParams(max_output_tokens=100))

    await connect(options=options).complete(request, "o3-mini")

    assert upstream.sent[sent_field] == 100
    assert {"max_tokens", "max_completion_tokens"} & upstream.sent.keys() == {sent_field}


async def test_read_only_mappings_in_schemas_are_sent(upstream: FakeUpstream, connect: Connect) -> None:
    upstream.reply = fixture_reply("chat_completion_text.json")
    frozen = types.MappingProxyType({"type": "object", "properties": types.MappingProxyType({})})
    request = ChatRequest(messages=HI.messages, tools=(ToolSpec("now", parameters=frozen),))

    await connect().complete(request, "gpt-4o")

    assert upstream.sent["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}


# --- streaming ----------------------------------------------------------------------------------

TEXT_EVENTS: list[StreamEvent] = [
    *(TextDelta(t) for t in ["Hello", "!", " How", " can", " I", " assist", " you", " today", "?"]),
    StreamDone(FinishReason.STOP, Usage(19, 10, 0), "gpt-4o-mini-2024-07-18"),
]

TOOL_EVENTS: list[StreamEvent] = [
    ToolCallDelta(0, "call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather", ""),
    *(ToolCallDelta(0, arguments_fragment=f) for f in ['{"', "location", '":"', "Paris", ", France", '"}']),
    ToolCallDelta(1, "call_ABlKzTF4zEbE6LkPqgQ0vGhG", "get_weather", ""),
    *(ToolCallDelta(1, arguments_fragment=f) for f in ['{"location":', ' "Bogotá', ', Colombia"}']),
    StreamDone(FinishReason.TOOL_CALLS, Usage(83, 45, 0), "gpt-4o-2024-08-06"),
]


def _whole(data: bytes) -> list[bytes]:
    return [data]


def _every(size: int) -> Callable[[bytes], list[bytes]]:
    return lambda data: split_every(data, size)


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def _cr(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r")


def _keepalives(data: bytes) -> bytes:
    return b": ping\n\n" + data.replace(b"\n\n", b"\n\n: ping\n\n")


def _multiline_data(data: bytes) -> bytes:
    # Split each JSON chunk over two data lines; SSE joins them with "\n", which JSON reads as space.
    return re.sub(rb'^data: (\{"[^,]*,)', rb"data: \1\ndata: ", data, flags=re.MULTILINE)


def _same(data: bytes) -> bytes:
    return data


TRANSFORMS = [_same, _crlf, _cr, _keepalives, _multiline_data]
CHUNKERS = [_whole, _every(1), _every(7), _every(64)]


@pytest.mark.parametrize("transform", TRANSFORMS, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("chunker", CHUNKERS, ids=["whole", "1-byte", "7-byte", "64-byte"])
async def test_stream_text_in_any_framing(
    upstream: FakeUpstream,
    connect: Connect,
    transform: Callable[[bytes], bytes],
    chunker: Callable[[bytes], list[bytes]],
) -> None:
    upstream.reply = sse_reply(chunker(transform(sse_bytes("stream_text.sse"))))

    assert await collect(connect()) == TEXT_EVENTS


@pytest.mark.parametrize("chunker", CHUNKERS, ids=["whole", "1-byte", "7-byte", "64-byte"])
async def test_stream_tool_call_fragments(
    upstream: FakeUpstream, connect: Connect, chunker: Callable[[bytes], list[bytes]]
) -> None:
    upstream.reply = sse_reply(chunker(sse_bytes("stream_tool_calls.sse")))

    events = await collect(connect())

    assert events == TOOL_EVENTS
    arguments = ["", ""]
    for event in events:
        if isinstance(event, ToolCallDelta):
            arguments[event.index] += event.arguments_fragment
    assert [json.loads(a) for a in arguments] == [
        {"location": "Paris, France"},
        {"location": "Bogotá, Colombia"},
    ]


async def test_stream_request_asks_for_a_stream_with_usage(upstream: FakeUpstream, connect: Connect) -> None:
    upstream.reply = sse_reply([sse_bytes("stream_text.sse")])
    request = ChatRequest(
        messages=HI.messages,
        tools=(WEATHER_TOOL,),
        tool_choice=ToolChoice(ToolChoiceMode.REQUIRED),
        response_format=ResponseFormat(ResponseFormatType.JSON_OBJECT),
    )

    await collect(connect(), request)

    sent = upstream.sent
    assert (upstream.requests[0].method, upstream.requests[0].target) == ("POST", "/v1/chat/completions")
    assert (sent["model"], sent["stream"], sent["stream_options"]) == (
        "gpt-4o-mini",
        True,
        {"include_usage": True},
    )
    assert (sent["tool_choice"], sent["response_format"]) == ("required", {"type": "json_object"})
    assert sent["tools"][0]["function"]["name"] == "get_weather"


async def test_stream_reads_usage_from_null_choices_and_defaults_to_zero(
    upstream: FakeUpstream, connect: Connect
) -> None:
    text = '{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}'
    usage = '{"choices":null,"usage":{"prompt_tokens":3,"completion_tokens":1}}'
    upstream.reply = sse_reply([sse_of(text, usage, "[DONE]")])
    adapter = connect()

    assert await collect(adapter) == [TextDelta("hi"), StreamDone(FinishReason.STOP, Usage(3, 1), "")]

    upstream.reply = sse_reply([sse_of(text, "[DONE]")])
    assert await collect(adapter) == [TextDelta("hi"), StreamDone(FinishReason.STOP, Usage(), "")]


async def test_stream_skips_role_only_empty_and_deltaless_chunks(
    upstream: FakeUpstream, connect: Connect
) -> None:
    upstream.reply = sse_reply(
        [
            sse_of(
                '{"choices":[{"index":0,"delta":{"role":"assistant"}}]}',
                '{"choices":[{"index":0,"delta":{"content":""}}]}',
                '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":""}}]}}]}',
                '{"choices":[{"index":0,"finish_reason":"stop","content_filter_results":{}}]}',
                '{"choices":[],"prompt_filter_results":[]}',
                "[DONE]",
            )
        ]
    )

    assert await collect(connect()) == [StreamDone(FinishReason.STOP, Usage(), "")]


async def test_stream_error_mid_stream_raises_after_delivered_text(
    upstream: FakeUpstream, connect: Connect
) -> None:
    upstream.reply = sse_reply(_every(5)(sse_bytes("stream_error_mid_stream.sse")))

    events, error = await collect_until_error(connect())

    assert events == [TextDelta("Once upon"), TextDelta(" a time")]
    assert error.error_class is ErrorClass.OVERLOADED
    assert "server_error" in error.message
    assert "Sorry about that!" in error.message


@pytest.mark.parametrize(
    ("frame", "error_class"),
    [
        (
            'data: {"error":{"message":"slow down","type":"tokens","code":"rate_limit_exceeded"}}',
            ErrorClass.RATE_LIMITED,
        ),
        ('data: {"error":{"message":"busy","type":"overloaded_error"}}', ErrorClass.OVERLOADED),
        (
            'data: {"error":{"message":"bad","type":"invalid_request_error","code":null}}',
            ErrorClass.BAD_RESPONSE,
        ),
        ('data: {"error":"boom"}', ErrorClass.BAD_RESPONSE),
        (
            'data: {"object":"error","message":"oops","type":"InternalServerError","code":500}',
            ErrorClass.BAD_RESPONSE,
        ),
        ('event: error\ndata: {"message":"Overloaded","type":"overloaded"}', ErrorClass.OVERLOADED),
    ],
    ids=["rate-limit", "overloaded", "other-type", "string-error", "vllm-object-error", "sse-error-event"],
)
async def test_stream_error_classes(
    upstream: FakeUpstream, connect: Connect, frame: str, error_class: ErrorClass
) -> None:
    first = sse_of('{"choices":[{"index":0,"delta":{"content":"x"}}]}')
    upstream.reply = sse_reply([first, frame.encode() + b"\n\n", sse_of("[DONE]")])

    events, error = await collect_until_error(connect())

    assert events == [TextDelta("x")]
    assert error.error_class is error_class


async def test_stream_cut_without_done_is_a_connection_error(
    upstream: FakeUpstream, connect: Connect
) -> None:
    upstream.reply = sse_reply(_every(3)(sse_bytes("stream_cut_without_done.sse")))

    events, error = await collect_until_error(connect())

    assert events == [TextDelta("The answer"), TextDelta(" is")]
    assert (error.error_class, error.message) == (ErrorClass.CONNECTION, "stream ended before [DONE]")


async def test_stream_with_finish_and_usage_but_no_done_is_still_incomplete(
    upstream: FakeUpstream, connect: Connect
) -> None:
    complete = sse_bytes("stream_text.sse")
    upstream.reply = sse_reply([complete.replace(b"data: [DONE]\n\n", b"")])

    events, error = await collect_until_error(connect())

    assert events == TEXT_EVENTS[:-1]  # every delta, but no StreamDone
    assert error.error_class is ErrorClass.CONNECTION


async def test_stream_invalid_json_chunk_is_bad_response(upstream: FakeUpstream, connect: Connect) -> None:
    upstream.reply = sse_reply(
        [sse_of('{"choices":[{"index":0,"delta":{"content":"x"}}]}', '{"choices":[', "[DONE]")]
    )

    events, error = await collect_until_error(connect())

    assert events == [TextDelta("x")]
    assert error.error_class is ErrorClass.BAD_RESPONSE


async def test_stream_transport_failure_mid_body_is_a_connection_error(
    upstream: FakeUpstream, connect: Connect
) -> None:
    upstream.reply = sse_reply([sse_bytes("stream_cut_without_done.sse")], end="cut")

    events, error = await collect_until_error(connect())

    assert events == [TextDelta("The answer"), TextDelta(" is")]
    assert error.error_class is ErrorClass.CONNECTION
    assert isinstance(error.__cause__, support.CUT_MID_BODY)


async def test_stream_closes_the_response_after_done(upstream: FakeUpstream, connect: Connect) -> None:
    trailing = b'data: {"choices":[{"index":0,"delta":{"content":"after done"}}]}\n\n'
    # The answer never ends, so only the adapter closing the response ends the connection.
    upstream.reply = sse_reply([sse_bytes("stream_text.sse"), trailing], end="hang")

    events = await collect(connect())

    assert events == TEXT_EVENTS  # nothing after [DONE] is read as part of the answer
    await upstream.wait_disconnect()
    assert upstream.disconnects == 1


async def test_stream_closes_the_response_when_the_caller_stops_early(
    upstream: FakeUpstream, connect: Connect
) -> None:
    upstream.reply = sse_reply(_every(50)(sse_bytes("stream_text.sse")), end="hang")
    stream = connect().stream(HI, "gpt-4o-mini")

    assert await anext(stream) == TextDelta("Hello")
    await stream.aclose()

    await upstream.wait_disconnect()
    assert upstream.disconnects == 1
