"""OpenAI Chat Completions adapter: OpenAI, Azure OpenAI, Mistral, DeepSeek, Groq, Together, vLLM, Ollama.

Wire mapping, internal model -> `POST {base_url}/chat/completions`:

- messages: one wire message per `Message`, `role` is the Role value. An assistant turn's tool calls
  become `tool_calls: [{"id", "type": "function", "function": {"name", "arguments"}}]`, with
  `content: null` when the turn has no text; a tool result is `{"role": "tool", "tool_call_id",
  "content"}`. A non-empty `Message.name` is sent as `name`.
- tools: `{"type": "function", "function": {"name", "description", "parameters"}}`. tool_choice is
  "auto" / "none" / "required" or `{"type": "function", "function": {"name"}}`, and is only sent with
  tools (OpenAI rejects a tool_choice without tools).
- response_format: `{"type": "text" | "json_object"}`, or `{"type": "json_schema", "json_schema":
  {"name", "schema", "strict": true}}`.
- params: temperature, top_p, stop, seed and the output cap, `max_tokens` (accepted by every compatible
  server) or `max_completion_tokens` when the endpoint option `max_tokens_field` asks for it (OpenAI's
  reasoning models refuse `max_tokens`). Unset fields are omitted, so each server keeps its default.
- streaming adds `"stream": true, "stream_options": {"include_usage": true}`.

Wire -> internal model: only `choices[0]` is read (we never ask for n > 1). finish_reason stop / length /
tool_calls / function_call / content_filter map to FinishReason; usage maps prompt_tokens,
completion_tokens and prompt_tokens_details.cached_tokens. A stream is SSE `data:` lines, each a
`chat.completion.chunk`, then a usage chunk with empty choices, then `data: [DONE]`; only [DONE] ends
a stream cleanly.

Endpoint options read here: `auth` ("azure": send `api-key` instead of a bearer token), `api_version`
(Azure's `api-version` query parameter; not needed for Azure's `/openai/v1` URLs) and
`max_tokens_field`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncGenerator, AsyncIterable, Mapping

import httpx

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
from router_service.providers.base import ProviderEndpoint, bad_response, error_from_response
from router_service.providers.boundary import AdapterBoundary
from router_service.providers.sse import SSEEvent
from router_service.providers.usage import usage_object, wire_count
from router_service.providers.wire import WireClient, as_object, decode_object, encode_json

_FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "model_length": FinishReason.LENGTH,  # Mistral: the context window ran out, not max_tokens
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,  # the legacy functions API, still sent by some servers
    "content_filter": FinishReason.CONTENT_FILTER,
}

_TOOL_CHOICE_MODES = {
    ToolChoiceMode.AUTO: "auto",
    ToolChoiceMode.NONE: "none",
    ToolChoiceMode.REQUIRED: "required",
}

# A failure reported inside a 200 stream has no HTTP status; its `type` or `code` is all there is.
# "tokens" and "requests" are the `type`s OpenAI gives its rate-limit errors.
_STREAM_ERROR_CLASSES = {
    "server_error": ErrorClass.OVERLOADED,
    "overloaded": ErrorClass.OVERLOADED,
    "overloaded_error": ErrorClass.OVERLOADED,
    "service_unavailable": ErrorClass.OVERLOADED,
    "rate_limit_exceeded": ErrorClass.RATE_LIMITED,
    "rate_limit_error": ErrorClass.RATE_LIMITED,
    "tokens": ErrorClass.RATE_LIMITED,
    "requests": ErrorClass.RATE_LIMITED,
}


class OpenAIAdapter:
    """One OpenAI-compatible endpoint, called through the shared client."""

    def __init__(self, endpoint: ProviderEndpoint, client: httpx.AsyncClient) -> None:
        self.endpoint = endpoint
        # Built once so a bad base_url fails at startup rather than on the first request. Kept as
        # text: WireClient looks its parsed form up by it, and a URL object hashes its whole text.
        url = httpx.URL(endpoint.base_url.rstrip("/") + "/chat/completions")
        if url.scheme not in ("http", "https"):
            raise ValueError(f"provider {endpoint.name!r}: base_url must be an http(s) URL")
        self._url = str(url)
        self._wire = WireClient(client, _request_headers(endpoint), error_from_response, endpoint.limits)
        self._boundary = AdapterBoundary(endpoint)
        api_version = endpoint.options.get("api_version", "")
        self._params = {"api-version": api_version} if api_version else {}
        wants_new_field = endpoint.options.get("max_tokens_field") == "max_completion_tokens"
        self._max_tokens_field = "max_completion_tokens" if wants_new_field else "max_tokens"

    async def complete(self, request: ChatRequest, upstream_model: str) -> ChatResult:
        payload = to_wire(request, upstream_model, False, max_tokens_field=self._max_tokens_field)
        with self._boundary.guard(upstream_model):
            body = await self._wire.post_json(self._url, encode_json(payload), self._params)
            return self._boundary.result(from_wire(body), request, upstream_model)

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]:
        payload = to_wire(request, upstream_model, True, max_tokens_field=self._max_tokens_field)
        with self._boundary.guard(upstream_model):
            async with self._wire.stream(self._url, encode_json(payload), self._params) as events:
                async for event in _stream_events(events):
                    if isinstance(event, StreamDone):
                        event = self._boundary.done(event, request, upstream_model)
                    yield event


def _request_headers(endpoint: ProviderEndpoint) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if endpoint.api_key and endpoint.options.get("auth") == "azure":
        headers["api-key"] = endpoint.api_key
    elif endpoint.api_key:
        headers["authorization"] = f"Bearer {endpoint.api_key}"
    # Configured headers come last so an endpoint can override any of ours (e.g. a gateway's auth).
    headers.update(endpoint.headers)
    return headers


# --- internal model -> wire ---------------------------------------------------------------------


def to_wire(
    request: ChatRequest, upstream_model: str, stream: bool, *, max_tokens_field: str = "max_tokens"
) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "model": upstream_model,
        "messages": [_message_to_wire(message) for message in request.messages],
    }
    if request.tools:
        wire["tools"] = [_tool_to_wire(tool) for tool in request.tools]
        if request.tool_choice is not None:
            wire["tool_choice"] = _tool_choice_to_wire(request.tool_choice)
    if request.response_format is not None:
        wire["response_format"] = _response_format_to_wire(request.response_format)
    wire.update(_params_to_wire(request.params, max_tokens_field))
    if stream:
        wire["stream"] = True
        # Without this the stream carries no token counts at all.
        wire["stream_options"] = {"include_usage": True}
    return wire


def _message_to_wire(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [_tool_call_to_wire(call) for call in message.tool_calls]
        # OpenAI's own shape for an assistant turn that only calls tools.
        wire["content"] = message.content or None
    if message.role is Role.TOOL:
        wire["tool_call_id"] = message.tool_call_id
    if message.name:
        wire["name"] = message.name
    return wire


def _tool_call_to_wire(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }


def _tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    if tool.parameters:
        function["parameters"] = tool.parameters
    return {"type": "function", "function": function}


def _tool_choice_to_wire(choice: ToolChoice) -> str | dict[str, Any]:
    if choice.mode is ToolChoiceMode.FUNCTION:
        return {"type": "function", "function": {"name": choice.function_name}}
    return _TOOL_CHOICE_MODES[choice.mode]


def _response_format_to_wire(response_format: ResponseFormat) -> dict[str, Any]:
    if response_format.type is not ResponseFormatType.JSON_SCHEMA:
        return {"type": response_format.type.value}
    if response_format.json_schema is None:
        raise ProviderError(ErrorClass.INVALID_REQUEST, "response_format json_schema has no schema")
    # OpenAI requires a name; "response" stands in when the caller gave none.
    json_schema = {
        "name": response_format.schema_name or "response",
        "schema": response_format.json_schema,
        "strict": True,
    }
    return {"type": "json_schema", "json_schema": json_schema}


def _params_to_wire(params: GenerationParams, max_tokens_field: str) -> dict[str, Any]:
    candidates: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        max_tokens_field: params.max_output_tokens,
        "stop": list(params.stop_sequences) or None,
        "seed": params.seed,
    }
    return {name: value for name, value in candidates.items() if value is not None}


# --- wire -> internal model ---------------------------------------------------------------------


def from_wire(body: Mapping[str, Any]) -> ChatResult:
    choice = _first_choice(body)
    message = as_object(choice.get("message"), "choices[0].message")
    return ChatResult(
        message=Message(
            role=Role.ASSISTANT,
            content=_text(message, "choices[0].message"),
            tool_calls=_tool_calls(message.get("tool_calls")),
        ),
        finish_reason=_finish_reason(choice.get("finish_reason")),
        usage=_usage(body.get("usage")),
        upstream_model=_optional_str(body.get("model"), "model"),
        response_id=_optional_str(body.get("id"), "id"),
    )


def _first_choice(body: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise bad_response("choices is missing or empty")
    return as_object(choices[0], "choices[0]")


def _text(message: Mapping[str, Any], where: str) -> str:
    """The assistant's text from a message or a stream delta.

    A structured-output refusal comes as `refusal` with null `content`; it is still the answer the
    caller must see. Mistral can send `content` as a list of typed parts; only text parts count."""
    content = message.get("content")
    if content is None:
        content = message.get("refusal")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_part(part, f"{where}.content") for part in content)
    raise bad_response(f"{where}.content is neither a string nor a list")


def _text_part(item: object, where: str) -> str:
    part = as_object(item, where)
    if part.get("type") != "text":
        return ""  # e.g. Mistral's "thinking" parts: not part of the answer
    return _optional_str(part.get("text"), f"{where}.text")


def _tool_calls(value: object) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise bad_response("message.tool_calls is not a list")
    return tuple(_tool_call(item, f"tool_calls[{i}]") for i, item in enumerate(value))


def _tool_call(item: object, where: str) -> ToolCall:
    call = as_object(item, where)
    function = as_object(call.get("function"), f"{where}.function")
    return ToolCall(
        id=_required_str(call.get("id"), f"{where}.id"),
        name=_required_str(function.get("name"), f"{where}.function.name"),
        arguments_json=_required_str(function.get("arguments"), f"{where}.function.arguments"),
    )


def _finish_reason(value: object) -> FinishReason:
    if value is None:
        return FinishReason.UNKNOWN
    if not isinstance(value, str):
        raise bad_response("finish_reason is not a string")
    return _FINISH_REASONS.get(value, FinishReason.UNKNOWN)


def _usage(value: object) -> Usage:
    """Token counts. An absent usage object counts as zero rather than failing a good answer: some
    compatible servers leave it out, most often in streams where stream_options is ignored."""
    usage = usage_object(value, "usage")
    details = usage_object(usage.get("prompt_tokens_details"), "usage.prompt_tokens_details")
    return Usage(
        input_tokens=wire_count(usage, "prompt_tokens"),
        output_tokens=wire_count(usage, "completion_tokens"),
        cached_input_tokens=wire_count(details, "cached_tokens"),
    )


# --- streaming ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _StreamState:
    """What the stream has said so far that belongs in StreamDone."""

    finish_reason: FinishReason = FinishReason.UNKNOWN
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    def on_chunk(self, chunk: Mapping[str, Any]) -> list[StreamEvent]:
        self.model = _optional_str(chunk.get("model"), "model") or self.model
        if chunk.get("usage") is not None:
            self.usage = _usage(chunk["usage"])
        # The include_usage chunk has empty (vLLM: null) choices, as does Azure's prompt-filter chunk.
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise bad_response("choices is not a list")
        return self._on_choice(as_object(choices[0], "choices[0]")) if choices else []

    def _on_choice(self, choice: Mapping[str, Any]) -> list[StreamEvent]:
        if choice.get("finish_reason") is not None:
            self.finish_reason = _finish_reason(choice["finish_reason"])
        # Azure's content-filter annotations arrive as choices without a delta.
        delta = as_object(choice.get("delta") or {}, "choices[0].delta")
        events: list[StreamEvent] = []
        text = _text(delta, "choices[0].delta")
        if text:  # role-only and empty deltas carry nothing for the caller
            events.append(TextDelta(text))
        events.extend(_tool_call_deltas(delta.get("tool_calls")))
        return events


async def _stream_events(events: AsyncIterable[SSEEvent]) -> AsyncGenerator[StreamEvent, None]:
    state = _StreamState()
    async for sse in events:
        if sse.data.strip() == "[DONE]":
            yield StreamDone(state.finish_reason, state.usage, state.model)
            return
        chunk = decode_object(sse.data, "stream chunk")
        _raise_stream_error(sse.event, chunk)
        for event in state.on_chunk(chunk):
            yield event
    # Some servers end without [DONE] right after a chunk that carried finish_reason and usage. That is
    # still treated as a cut: a proxy closing the connection early can look exactly the same, and a
    # truncated answer must never pass as a clean finish. A missing [DONE] costs a fallback; a false
    # finish would hand the caller half an answer as if it were whole.
    raise ProviderError(ErrorClass.CONNECTION, "stream ended before [DONE]")


def _tool_call_deltas(value: object) -> list[ToolCallDelta]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_response("delta.tool_calls is not a list")
    deltas = [_tool_call_delta(item, position) for position, item in enumerate(value)]
    return [d for d in deltas if d.id or d.name or d.arguments_fragment]


def _tool_call_delta(item: object, position: int) -> ToolCallDelta:
    where = f"delta.tool_calls[{position}]"
    call = as_object(item, where)
    function = as_object(call.get("function") or {}, f"{where}.function")
    # OpenAI always sends `index`; a server that leaves it out sends whole calls, in order.
    index = call.get("index")
    index = position if index is None else index
    if isinstance(index, bool) or not isinstance(index, int):
        raise bad_response(f"{where}.index is not an integer")
    return ToolCallDelta(
        index=index,
        id=_optional_str(call.get("id"), f"{where}.id"),
        name=_optional_str(function.get("name"), f"{where}.function.name"),
        arguments_fragment=_optional_str(function.get("arguments"), f"{where}.function.arguments"),
    )


def _raise_stream_error(sse_event: str, chunk: Mapping[str, Any]) -> None:
    """A failure after the 200 arrives as a chunk: OpenAI sends `{"error": {...}}`, older vLLM a chunk
    with `"object": "error"`, and some servers name the SSE event `error`."""
    if chunk.get("error") is not None:
        raise _stream_error(chunk["error"])
    if chunk.get("object") == "error" or sse_event == "error":
        raise _stream_error(chunk)


def _stream_error(error: object) -> ProviderError:
    if not isinstance(error, dict):
        return ProviderError(ErrorClass.BAD_RESPONSE, f"upstream error mid-stream: {str(error)[:300]}")
    labels = [str(error.get(key) or "") for key in ("type", "code")]
    error_class = next(
        (_STREAM_ERROR_CLASSES[label] for label in labels if label in _STREAM_ERROR_CLASSES),
        ErrorClass.BAD_RESPONSE,
    )
    message = str(error.get("message") or "")[:300]
    return ProviderError(error_class, f"upstream error mid-stream ({'/'.join(labels)}): {message}")


# --- JSON helpers: every shape check ends in bad_response, never a KeyError or TypeError ----------


def _optional_str(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_response(f"{where} is not a string")
    return value


def _required_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise bad_response(f"{where} is missing or not a string")
    return value
