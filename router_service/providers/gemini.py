"""Google Gemini API adapter: `POST {base_url}/{api_version}/models/{model}:generateContent`, and
`:streamGenerateContent?alt=sse` for streaming. The API key travels in the `x-goog-api-key` header,
never in the URL, so it cannot leak into error messages.

Request (internal -> wire):
- System messages become `systemInstruction: {parts: [{text}]}`, joined with blank lines.
- User messages become role "user" contents, assistant messages role "model"; assistant tool calls
  become `functionCall {name, args}` parts. Tool-role messages become `functionResponse {name,
  response}` parts in a "user" content: the name comes from the earlier assistant tool call with the
  same id (falling back to the message's own `name`), and content that is not a JSON object is
  wrapped as `{"result": content}`. Consecutive contents with the same role are merged, so parallel
  tool results answer in one turn. Messages with no content at all are dropped.
- `generationConfig`: temperature, topP, maxOutputTokens, stopSequences, seed; JSON modes set
  `responseMimeType: application/json`, and JSON_SCHEMA also `responseJsonSchema` (plain JSON
  Schema, unlike `responseSchema`'s OpenAPI subset). Tools become `tools: [{functionDeclarations}]`
  with `parametersJsonSchema` for the same reason; tool choice becomes
  `toolConfig.functionCallingConfig.mode` AUTO / NONE / ANY (+ `allowedFunctionNames` for one
  function), sent only when tools are.

Response (wire -> internal): `candidates[0].content.parts`: text parts are concatenated (thought
parts skipped), functionCall parts become tool calls. Gemini gives calls no ids, so they get
deterministic ids `call_0`, `call_1`, ... in order. finishReason STOP -> STOP, MAX_TOKENS -> LENGTH,
SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_SAFETY -> CONTENT_FILTER, others ->
UNKNOWN; any function call makes it TOOL_CALLS. A prompt blocked with no candidates
(`promptFeedback.blockReason`) raises ProviderError(CONTENT_FILTERED). Usage: promptTokenCount (it
includes cached tokens), candidatesTokenCount + thoughtsTokenCount, cachedContentTokenCount.

Streaming: every SSE event is a whole GenerateContentResponse chunk. Text parts -> TextDelta,
functionCall parts -> one ToolCallDelta each carrying id, name and the whole arguments JSON. The
last usageMetadata seen wins. Gemini sends no terminal sentinel: the stream ends cleanly (one
StreamDone) only if some chunk carried a finishReason; otherwise ProviderError(CONNECTION). A chunk
carrying an `error` object raises ProviderError classified like an HTTP error with that code.

Errors: non-2xx answers go through base.error_from_response (Google's `{"error": {code, status,
message}}` bodies; "input token count ... exceeds the maximum number of tokens" -> context length),
except that a 400 with reason API_KEY_INVALID is AUTH, not the caller's fault, and a 429 without a
retry-after header takes its delay from the body's google.rpc.RetryInfo `retryDelay`.

Endpoint options read: `api_version` (path segment, default v1beta).

Limits: the internal model has no place for `thoughtSignature`, so signatures are dropped from
answers and never sent back. Gemini 2.5 tolerates that; Gemini 3 rejects (4xx) a multi-step
function-calling turn whose earlier calls lack their signatures.
"""

from __future__ import annotations

import json
from typing import Any, AsyncGenerator, Mapping, Sequence
from urllib.parse import quote

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
from router_service.providers.base import (
    ProviderEndpoint,
    bad_response,
    classify_status,
    error_from_response,
)
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

DEFAULT_API_VERSION = "v1beta"

_FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
    "IMAGE_SAFETY": FinishReason.CONTENT_FILTER,
}

_TOOL_CHOICE_MODES: dict[ToolChoiceMode, str] = {
    ToolChoiceMode.AUTO: "AUTO",
    ToolChoiceMode.NONE: "NONE",
    ToolChoiceMode.REQUIRED: "ANY",
    ToolChoiceMode.FUNCTION: "ANY",
}


class GeminiAdapter:
    """ProviderAdapter for the Gemini API (generativelanguage.googleapis.com)."""

    def __init__(self, endpoint: ProviderEndpoint, client: httpx.AsyncClient) -> None:
        self.endpoint = endpoint
        # Built once so bad configuration fails at startup rather than on the first request.
        self._models_url = _models_url(endpoint)
        self._wire = WireClient(client, _request_headers(endpoint), map_error, endpoint.limits)
        self._boundary = AdapterBoundary(endpoint)

    async def complete(self, request: ChatRequest, upstream_model: str) -> ChatResult:
        url = self._url(upstream_model, "generateContent")
        content = encode_json(to_wire(request))
        with self._boundary.guard(upstream_model):
            body = await self._wire.post_json(url, content)
            return self._boundary.result(from_wire(body, upstream_model), request, upstream_model)

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]:
        url = self._url(upstream_model, "streamGenerateContent")
        content = encode_json(to_wire(request))
        parser = StreamParser(upstream_model)
        with self._boundary.guard(upstream_model):
            async with self._wire.stream(url, content, {"alt": "sse"}) as events:
                async for sse in events:
                    for event in parser.feed(sse):
                        yield event
            yield self._boundary.done(parser.done(), request, upstream_model)

    def _url(self, upstream_model: str, method: str) -> str:
        model = quote(upstream_model.removeprefix("models/"), safe="")
        return f"{self._models_url}{model}:{method}"


def _models_url(endpoint: ProviderEndpoint) -> str:
    version = endpoint.options.get("api_version", DEFAULT_API_VERSION)
    url = f"{endpoint.base_url.rstrip('/')}/{version}/models/"
    if httpx.URL(url).scheme not in ("http", "https"):
        raise ValueError(f"provider {endpoint.name!r}: base_url must be an http(s) URL")
    return url


def _request_headers(endpoint: ProviderEndpoint) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if endpoint.api_key:
        headers["x-goog-api-key"] = endpoint.api_key
    headers.update(endpoint.headers)  # last, so an endpoint can add or override
    return headers


def map_error(status: int, headers: httpx.Headers, body_text: str) -> ProviderError:
    """ProviderError for a non-2xx answer, refined for Google's error bodies: a bad API key is a
    400 INVALID_ARGUMENT with reason API_KEY_INVALID (our configuration, not the caller's request),
    and a 429 says when to retry in a RetryInfo detail rather than a retry-after header."""
    error = error_from_response(status, headers, body_text)
    error_class = error.error_class
    if status == 400 and "API_KEY_INVALID" in body_text:
        error_class = ErrorClass.AUTH
    retry_after_s = error.retry_after_s
    if retry_after_s is None:
        retry_after_s = _retry_delay(body_text)
    return ProviderError(error_class, error.message, status_code=status, retry_after_s=retry_after_s)


def _retry_delay(body_text: str) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail (`"retryDelay": "17s"`), or None."""
    try:
        details = json.loads(body_text)["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return None
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict) or not str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


# --- request: internal -> wire ----------------------------------------------------------------


def to_wire(request: ChatRequest) -> dict[str, Any]:
    """The generateContent request body (the model is in the URL)."""
    body: dict[str, Any] = {"contents": contents_to_wire(request.messages)}
    system = [m.content for m in request.messages if m.role is Role.SYSTEM and m.content]
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config = _generation_config(request.params, request.response_format)
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_function_declaration(t) for t in request.tools]}]
        if request.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _function_calling_config(request.tool_choice)}
    return body


def contents_to_wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Non-system messages as `contents`, consecutive same-role entries merged."""
    names_by_call_id: dict[str, str] = {}
    contents: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        if message.role is Role.SYSTEM:
            continue
        # Walk in order: ids like call_0 repeat across turns, and the latest call with an id wins.
        names_by_call_id.update((call.id, call.name) for call in message.tool_calls)
        role = "model" if message.role is Role.ASSISTANT else "user"
        parts = _parts_to_wire(position, message, names_by_call_id)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _parts_to_wire(
    position: int, message: Message, names_by_call_id: Mapping[str, str]
) -> list[dict[str, Any]]:
    if message.role is Role.TOOL:
        return [_function_response(position, message, names_by_call_id)]
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"text": message.content})
    for call_position, call in enumerate(message.tool_calls):
        where = f"messages[{position}].tool_calls[{call_position}]"
        parts.append({"functionCall": {"name": call.name, "args": tool_arguments(call, where)}})
    return parts


def _function_response(
    position: int, message: Message, names_by_call_id: Mapping[str, str]
) -> dict[str, Any]:
    name = names_by_call_id.get(message.tool_call_id) or message.name
    if not name:
        raise ProviderError(
            ErrorClass.INVALID_REQUEST,
            f"messages[{position}]: no earlier assistant tool call has id {message.tool_call_id!r}",
        )
    return {"functionResponse": {"name": name, "response": _tool_result(message.content)}}


def _tool_result(content: str) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"result": content}


def _generation_config(params: GenerationParams, response_format: ResponseFormat | None) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if params.temperature is not None:
        config["temperature"] = params.temperature
    if params.top_p is not None:
        config["topP"] = params.top_p
    if params.max_output_tokens is not None:
        config["maxOutputTokens"] = params.max_output_tokens
    if params.stop_sequences:
        config["stopSequences"] = list(params.stop_sequences)
    if params.seed is not None:
        config["seed"] = params.seed
    if response_format is not None and response_format.type is not ResponseFormatType.TEXT:
        config["responseMimeType"] = "application/json"
        if response_format.type is ResponseFormatType.JSON_SCHEMA and response_format.json_schema:
            config["responseJsonSchema"] = dict(response_format.json_schema)
    return config


def _function_declaration(tool: ToolSpec) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    if tool.parameters:
        declaration["parametersJsonSchema"] = dict(tool.parameters)
    return declaration


def _function_calling_config(choice: ToolChoice) -> dict[str, Any]:
    config: dict[str, Any] = {"mode": _TOOL_CHOICE_MODES[choice.mode]}
    if choice.mode is ToolChoiceMode.FUNCTION:
        config["allowedFunctionNames"] = [choice.function_name]
    return config


# --- response: wire -> internal -------------------------------------------------------------


def from_wire(payload: Mapping[str, Any], requested_model: str) -> ChatResult:
    """A ChatResult from a GenerateContentResponse."""
    candidate = _first_candidate(payload)
    if candidate is None:
        raise bad_response("no candidates")
    texts, calls = _read_parts(candidate, first_call_index=0)
    return ChatResult(
        message=Message(role=Role.ASSISTANT, content="".join(texts), tool_calls=tuple(calls)),
        finish_reason=finish_reason(candidate.get("finishReason"), has_tool_calls=bool(calls)),
        usage=usage_from_wire(payload.get("usageMetadata")),
        upstream_model=str(payload.get("modelVersion") or requested_model),
        response_id=str(payload.get("responseId") or ""),
    )


def _first_candidate(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """candidates[0]; raises CONTENT_FILTERED when the prompt itself was blocked."""
    candidates = payload.get("candidates")
    if isinstance(candidates, list) and candidates:
        return as_object(candidates[0], "candidates[0]")
    feedback = payload.get("promptFeedback")
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if reason:
        raise ProviderError(ErrorClass.CONTENT_FILTERED, f"prompt blocked by Gemini: {str(reason)[:100]}")
    return None


def _read_parts(candidate: Mapping[str, Any], first_call_index: int) -> tuple[list[str], list[ToolCall]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    calls: list[ToolCall] = []
    for raw_part in parts if isinstance(parts, list) else []:
        part = as_object(raw_part, "part")
        if "functionCall" in part:
            calls.append(_tool_call_from_wire(part["functionCall"], first_call_index + len(calls)))
        elif isinstance(part.get("text"), str) and not part.get("thought"):
            texts.append(part["text"])
    return texts, calls


def _tool_call_from_wire(function_call: object, index: int) -> ToolCall:
    call = as_object(function_call, "functionCall")
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise bad_response("functionCall without a name")
    args = call.get("args")
    return ToolCall(
        id=f"call_{index}",
        name=name,
        arguments_json=json.dumps(
            args if args is not None else {}, separators=(",", ":"), ensure_ascii=False
        ),
    )


def finish_reason(raw: object, *, has_tool_calls: bool) -> FinishReason:
    if has_tool_calls:
        return FinishReason.TOOL_CALLS
    if not isinstance(raw, str):
        return FinishReason.UNKNOWN
    return _FINISH_REASONS.get(raw, FinishReason.UNKNOWN)


def usage_from_wire(metadata: object) -> Usage:
    counts = usage_object(metadata, "usageMetadata")
    return Usage(
        input_tokens=wire_count(counts, "promptTokenCount"),
        output_tokens=wire_count(counts, "candidatesTokenCount") + wire_count(counts, "thoughtsTokenCount"),
        cached_input_tokens=wire_count(counts, "cachedContentTokenCount"),
    )


# --- streaming ------------------------------------------------------------------------------


class StreamParser:
    """Turns streamed GenerateContentResponse chunks into internal stream events."""

    def __init__(self, requested_model: str) -> None:
        self._model = requested_model
        self._finish: object = None
        self._usage: object = None
        self._tool_calls = 0

    def feed(self, sse: SSEEvent) -> list[StreamEvent]:
        chunk = decode_object(sse.data, "stream chunk")
        if "error" in chunk:
            raise stream_error(chunk["error"])
        if chunk.get("usageMetadata") is not None:
            self._usage = chunk["usageMetadata"]
        if isinstance(chunk.get("modelVersion"), str) and chunk["modelVersion"]:
            self._model = chunk["modelVersion"]
        candidate = _first_candidate(chunk)
        if candidate is None:
            return []
        if candidate.get("finishReason") is not None:
            self._finish = candidate["finishReason"]
        first_index = self._tool_calls
        texts, calls = _read_parts(candidate, first_call_index=first_index)
        self._tool_calls += len(calls)
        events: list[StreamEvent] = [TextDelta(text) for text in texts if text]
        events.extend(
            ToolCallDelta(
                index=first_index + offset, id=c.id, name=c.name, arguments_fragment=c.arguments_json
            )
            for offset, c in enumerate(calls)
        )
        return events

    def done(self) -> StreamDone:
        """The terminal event, once the byte stream has ended."""
        if self._finish is None:
            raise ProviderError(ErrorClass.CONNECTION, "stream ended before any finishReason")
        return StreamDone(
            finish_reason=finish_reason(self._finish, has_tool_calls=self._tool_calls > 0),
            usage=usage_from_wire(self._usage),
            upstream_model=self._model,
        )


def stream_error(error: object) -> ProviderError:
    """ProviderError for an `error` object sent inside the stream, classified by its HTTP code."""
    details = error if isinstance(error, dict) else {}
    code = details.get("code")
    text = f"{details.get('status', '')}: {details.get('message', '')}"
    if isinstance(code, int) and not isinstance(code, bool):
        return ProviderError(classify_status(code, text), f"stream error {code} {text[:300]}")
    return ProviderError(ErrorClass.BAD_RESPONSE, f"stream error {text[:300]}")
