"""Anthropic Messages API adapter: `POST {base_url}/v1/messages`, unary and SSE streaming.

Request (internal -> wire):
- System messages become the top-level `system` string, joined with blank lines.
- User and assistant messages become `messages` entries whose content is a list of blocks. Assistant
  tool calls become `tool_use` blocks (`input` is the parsed `arguments_json` object); tool-role
  messages become `tool_result` blocks in a user message. Anthropic requires alternating roles, so
  consecutive messages with the same wire role are merged into one (tool results first, as the API
  requires). Messages with no content at all are dropped: the API rejects empty text blocks.
- `max_tokens` is required: `params.max_output_tokens`, else the endpoint option `default_max_tokens`.
  temperature, top_p and stop_sequences map one to one; `seed` has no Anthropic equivalent and is
  not sent.
- Tools become `{name, description, input_schema}`; tool choice auto/required/function/none becomes
  `{"type": "auto" | "any" | "tool" (+name) | "none"}`, sent only when tools are.
- JSON mode: Anthropic has no JSON response mode. For JSON_OBJECT and JSON_SCHEMA an instruction
  (with the schema, for JSON_SCHEMA) is appended to the system prompt; the output is not validated.

Response (wire -> internal): text blocks are concatenated, `tool_use` blocks become tool calls with
compact JSON arguments, other blocks (thinking, ...) are ignored. stop_reason end_turn and
stop_sequence -> STOP, max_tokens and model_context_window_exceeded -> LENGTH, tool_use ->
TOOL_CALLS, refusal -> CONTENT_FILTER, anything else -> UNKNOWN. Usage: input tokens are
`input_tokens + cache_read_input_tokens + cache_creation_input_tokens` (Anthropic reports them
apart), cached input tokens are `cache_read_input_tokens`.

Streaming: message_start (model, input usage), content_block_start (a tool_use block yields a
ToolCallDelta with id and name, indexed by the tool's position among tool calls), content_block_delta
(text_delta -> TextDelta, input_json_delta -> argument fragment), content_block_stop, message_delta
(stop reason, cumulative usage), message_stop -> StreamDone. `ping` and unknown events are ignored;
an `error` event raises ProviderError. A stream that ends before message_stop raises
ProviderError(CONNECTION): it is never reported as a clean finish. A tool_use block that streams no
argument JSON gets one `{}` fragment at content_block_stop, matching the unary answer.

Errors: non-2xx answers go through base.error_from_response (529 overloaded -> OVERLOADED, 400
"prompt is too long" -> CONTEXT_LENGTH_EXCEEDED), with an echoed API key redacted first; httpx
failures through base.error_from_transport; a success body that is not the documented JSON ->
BAD_RESPONSE.

Endpoint options read: `version` (the `anthropic-version` header, default 2023-06-01) and
`default_max_tokens` (default 4096; parsed at construction so a bad value fails at startup).

Limits: thinking blocks are dropped from answers and never sent back (allowed by the API for earlier
turns). temperature and top_p are both sent when both are set, which some newer models reject.
"""

from __future__ import annotations

import json
from typing import Any, AsyncGenerator, Mapping, Sequence

import httpx

from router_service.domain import (
    ChatRequest,
    ChatResult,
    FinishReason,
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
from router_service.providers.base import ProviderEndpoint, bad_response, error_from_response
from router_service.providers.boundary import AdapterBoundary
from router_service.providers.sse import SSEEvent
from router_service.providers.usage import usage_object, wire_count
from router_service.providers.wire import (
    WireClient,
    as_object,
    decode_object,
    encode_json,
    tool_arguments,
)

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = "4096"

JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object and nothing else: no prose, no markdown code fences."
)
JSON_SCHEMA_INSTRUCTION = "The JSON object must conform to this JSON Schema:"

_STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}

_STREAM_ERROR_CLASSES: dict[str, ErrorClass] = {
    "overloaded_error": ErrorClass.OVERLOADED,
    "rate_limit_error": ErrorClass.RATE_LIMITED,
    "api_error": ErrorClass.OVERLOADED,
    "timeout_error": ErrorClass.TIMEOUT,
}

_TOOL_CHOICE_TYPES: dict[ToolChoiceMode, str] = {
    ToolChoiceMode.AUTO: "auto",
    ToolChoiceMode.REQUIRED: "any",
    ToolChoiceMode.FUNCTION: "tool",
    ToolChoiceMode.NONE: "none",
}

_USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


class AnthropicAdapter:
    """ProviderAdapter for the Anthropic Messages API."""

    def __init__(self, endpoint: ProviderEndpoint, client: httpx.AsyncClient) -> None:
        self.endpoint = endpoint
        # Built once so bad configuration fails at startup rather than on the first request.
        self._url = _messages_url(endpoint)
        self._wire = WireClient(client, _request_headers(endpoint), error_from_response, endpoint.limits)
        self._boundary = AdapterBoundary(endpoint)
        self._default_max_tokens = _parse_max_tokens(endpoint)

    async def complete(self, request: ChatRequest, upstream_model: str) -> ChatResult:
        content = encode_json(to_wire(request, upstream_model, self._default_max_tokens))
        with self._boundary.guard(upstream_model):
            body = await self._wire.post_json(self._url, content)
            return self._boundary.result(from_wire(body, upstream_model), request, upstream_model)

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]:
        body = to_wire(request, upstream_model, self._default_max_tokens)
        body["stream"] = True
        content = encode_json(body)
        parser = StreamParser(upstream_model)
        with self._boundary.guard(upstream_model):
            async with self._wire.stream(self._url, content) as events:
                async for sse in events:
                    for event in parser.feed(sse):
                        if isinstance(event, StreamDone):
                            event = self._boundary.done(event, request, upstream_model)
                        yield event
                    if parser.finished:
                        return
            raise ProviderError(ErrorClass.CONNECTION, "stream ended before message_stop")


def _messages_url(endpoint: ProviderEndpoint) -> str:
    # Text: WireClient looks its parsed form up by it, and a URL object hashes its whole text.
    url = httpx.URL(endpoint.base_url.rstrip("/") + "/v1/messages")
    if url.scheme not in ("http", "https"):
        raise ValueError(f"provider {endpoint.name!r}: base_url must be an http(s) URL")
    return str(url)


def _request_headers(endpoint: ProviderEndpoint) -> dict[str, str]:
    headers = {
        "anthropic-version": endpoint.options.get("version", DEFAULT_VERSION),
        "content-type": "application/json",
    }
    if endpoint.api_key:
        headers["x-api-key"] = endpoint.api_key
    headers.update(endpoint.headers)  # last, so an endpoint can add (anthropic-beta) or override
    return headers


def _parse_max_tokens(endpoint: ProviderEndpoint) -> int:
    raw = endpoint.options.get("default_max_tokens", DEFAULT_MAX_TOKENS)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"provider {endpoint.name!r}: default_max_tokens must be a positive integer")
    return value


# --- request: internal -> wire ----------------------------------------------------------------


def to_wire(request: ChatRequest, upstream_model: str, default_max_tokens: int) -> dict[str, Any]:
    """The Messages API request body (without `stream`)."""
    params = request.params
    body: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": params.max_output_tokens or default_max_tokens,
        "messages": messages_to_wire(request.messages),
    }
    system = _system_to_wire(request.messages, request.response_format)
    if system:
        body["system"] = system
    if params.temperature is not None:
        body["temperature"] = params.temperature
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if params.stop_sequences:
        body["stop_sequences"] = list(params.stop_sequences)
    if request.tools:
        body["tools"] = [_tool_to_wire(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice_to_wire(request.tool_choice)
    return body


def _system_to_wire(messages: Sequence[Message], response_format: ResponseFormat | None) -> str:
    parts = [m.content for m in messages if m.role is Role.SYSTEM and m.content]
    instruction = _json_instruction(response_format)
    if instruction:
        parts.append(instruction)
    return "\n\n".join(parts)


def _json_instruction(response_format: ResponseFormat | None) -> str:
    if response_format is None or response_format.type is ResponseFormatType.TEXT:
        return ""
    if response_format.type is ResponseFormatType.JSON_SCHEMA and response_format.json_schema:
        schema = json.dumps(response_format.json_schema, sort_keys=True)
        return f"{JSON_OBJECT_INSTRUCTION}\n{JSON_SCHEMA_INSTRUCTION}\n{schema}"
    return JSON_OBJECT_INSTRUCTION


def messages_to_wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Non-system messages as alternating user/assistant entries of content blocks."""
    wire: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        if message.role is Role.SYSTEM:
            continue
        role = "assistant" if message.role is Role.ASSISTANT else "user"
        blocks = _blocks_to_wire(position, message)
        if not blocks:
            continue
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"] = _tool_results_first([*wire[-1]["content"], *blocks])
        else:
            wire.append({"role": role, "content": blocks})
    return wire


def _blocks_to_wire(position: int, message: Message) -> list[dict[str, Any]]:
    if message.role is Role.TOOL:
        return [_tool_result_to_wire(message)]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call_position, call in enumerate(message.tool_calls):
        where = f"messages[{position}].tool_calls[{call_position}]"
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": tool_arguments(call, where)}
        )
    return blocks


def _tool_result_to_wire(message: Message) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    if message.content:
        block["content"] = message.content
    return block


def _tool_results_first(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = [b for b in blocks if b["type"] == "tool_result"]
    return results + [b for b in blocks if b["type"] != "tool_result"]


def _tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    wire: dict[str, Any] = {"name": tool.name}
    if tool.description:
        wire["description"] = tool.description
    wire["input_schema"] = dict(tool.parameters) if tool.parameters else {"type": "object", "properties": {}}
    return wire


def _tool_choice_to_wire(choice: ToolChoice) -> dict[str, Any]:
    wire: dict[str, Any] = {"type": _TOOL_CHOICE_TYPES[choice.mode]}
    if choice.mode is ToolChoiceMode.FUNCTION:
        wire["name"] = choice.function_name
    return wire


# --- response: wire -> internal -------------------------------------------------------------


def from_wire(payload: Mapping[str, Any], requested_model: str) -> ChatResult:
    """A ChatResult from a Messages API response body."""
    blocks = payload.get("content")
    if not isinstance(blocks, list):
        raise bad_response("'content' is not a list")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for raw_block in blocks:
        block = as_object(raw_block, "content block")
        if block.get("type") == "text":
            texts.append(_as_str(block.get("text"), "text block"))
        elif block.get("type") == "tool_use":
            calls.append(_tool_call_from_wire(block))
    return ChatResult(
        message=Message(role=Role.ASSISTANT, content="".join(texts), tool_calls=tuple(calls)),
        finish_reason=finish_reason(payload.get("stop_reason")),
        usage=usage_from_wire(payload.get("usage")),
        upstream_model=str(payload.get("model") or requested_model),
        response_id=str(payload.get("id") or ""),
    )


def _tool_call_from_wire(block: Mapping[str, Any]) -> ToolCall:
    arguments = block.get("input")
    if arguments is None:
        arguments = {}
    return ToolCall(
        id=_as_str(block.get("id"), "tool_use id"),
        name=_as_str(block.get("name"), "tool_use name"),
        arguments_json=json.dumps(arguments, separators=(",", ":"), ensure_ascii=False),
    )


def finish_reason(stop_reason: object) -> FinishReason:
    if not isinstance(stop_reason, str):
        return FinishReason.UNKNOWN
    return _STOP_REASONS.get(stop_reason, FinishReason.UNKNOWN)


def usage_from_wire(usage: object) -> Usage:
    counts = _usage_counts(usage)
    cache_read = counts.get("cache_read_input_tokens", 0)
    cache_write = counts.get("cache_creation_input_tokens", 0)
    return Usage(
        input_tokens=counts.get("input_tokens", 0) + cache_read + cache_write,
        output_tokens=counts.get("output_tokens", 0),
        cached_input_tokens=cache_read,
    )


def _usage_counts(usage: object) -> dict[str, int]:
    """The token counts present in a wire `usage` object (absent or null counts are left out); a
    count that is not a non-negative integer is ImplausibleUsageError."""
    counts = usage_object(usage, "usage")
    return {key: wire_count(counts, key) for key in _USAGE_KEYS if counts.get(key) is not None}


# --- streaming ------------------------------------------------------------------------------


class StreamParser:
    """Turns Messages API stream events into internal stream events, one SSE event at a time."""

    def __init__(self, requested_model: str) -> None:
        self.finished = False
        self._model = requested_model
        self._stop_reason: object = None
        self._usage: dict[str, int] = {}
        self._tool_positions: dict[int, int] = {}  # content block index -> position among tool calls
        self._tools_with_arguments: set[int] = set()

    def feed(self, sse: SSEEvent) -> list[StreamEvent]:
        data = decode_object(sse.data, "stream event data")
        match data.get("type", sse.event):
            case "message_start":
                return self._on_message_start(data)
            case "content_block_start":
                return self._on_block_start(data)
            case "content_block_delta":
                return self._on_block_delta(data)
            case "content_block_stop":
                return self._on_block_stop(data)
            case "message_delta":
                return self._on_message_delta(data)
            case "message_stop":
                return self._on_message_stop()
            case "error":
                raise stream_error(data)
            case _:
                return []  # ping, and event types added after this adapter was written

    def _on_message_start(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        message = as_object(data.get("message"), "message_start.message")
        if isinstance(message.get("model"), str) and message["model"]:
            self._model = message["model"]
        self._usage.update(_usage_counts(message.get("usage")))
        return []

    def _on_block_start(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        index = _block_index(data)
        block = as_object(data.get("content_block"), "content_block_start.content_block")
        if block.get("type") == "text":
            text = block.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if block.get("type") != "tool_use":
            return []
        position = len(self._tool_positions)
        self._tool_positions[index] = position
        return [
            ToolCallDelta(
                index=position,
                id=_as_str(block.get("id"), "tool_use id"),
                name=_as_str(block.get("name"), "tool_use name"),
            )
        ]

    def _on_block_delta(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        index = _block_index(data)
        delta = as_object(data.get("delta"), "content_block_delta.delta")
        if delta.get("type") == "text_delta":
            text = _as_str(delta.get("text"), "text_delta")
            return [TextDelta(text)] if text else []
        if delta.get("type") != "input_json_delta":
            return []  # thinking_delta, signature_delta, citations_delta: not in the internal model
        if index not in self._tool_positions:
            raise bad_response("input_json_delta for a block that is not a tool_use")
        fragment = _as_str(delta.get("partial_json"), "input_json_delta")
        if not fragment:
            return []
        self._tools_with_arguments.add(index)
        return [ToolCallDelta(index=self._tool_positions[index], arguments_fragment=fragment)]

    def _on_block_stop(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        index = _block_index(data)
        if index in self._tool_positions and index not in self._tools_with_arguments:
            # A tool called without arguments streams no JSON at all; unary answers say `{}`.
            return [ToolCallDelta(index=self._tool_positions[index], arguments_fragment="{}")]
        return []

    def _on_message_delta(self, data: Mapping[str, Any]) -> list[StreamEvent]:
        delta = data.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason") is not None:
            self._stop_reason = delta["stop_reason"]
        self._usage.update(_usage_counts(data.get("usage")))
        return []

    def _on_message_stop(self) -> list[StreamEvent]:
        self.finished = True
        done = StreamDone(
            finish_reason=finish_reason(self._stop_reason),
            usage=usage_from_wire(self._usage),
            upstream_model=self._model,
        )
        return [done]


def stream_error(data: Mapping[str, Any]) -> ProviderError:
    """ProviderError for an in-stream `error` event."""
    error = data.get("error")
    if not isinstance(error, dict):
        error = {}
    kind = str(error.get("type") or "unknown")
    message = str(error.get("message") or "")
    error_class = _STREAM_ERROR_CLASSES.get(kind, ErrorClass.BAD_RESPONSE)
    return ProviderError(error_class, f"stream error event {kind}: {message[:300]}")


def _block_index(data: Mapping[str, Any]) -> int:
    index = data.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise bad_response("stream event without an integer 'index'")
    return index


# --- small typed accessors ------------------------------------------------------------------


def _as_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise bad_response(f"{what} is not a string")
    return value
