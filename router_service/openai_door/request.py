"""An OpenAI Chat Completions request body -> the internal `ChatRequest`, with validation.

The shape is OpenAI's (`messages`, `tools`, `tool_choice`, `response_format`, `temperature`,
`top_p`, `max_tokens` / `max_completion_tokens`, `stop`, `seed`, `n`, `stream`,
`stream_options`, `metadata`, `user`); the rules are the gRPC codec's, from
`router_service.request_rules`, with the fields at fault named as OpenAI names them
(`messages[2].tool_call_id`, `tools[0].function.name`). Every violation is reported at once in
one `InvalidRequestError`, before anything is routed or called.

Routing:
- `model`: a catalog model (`m1`), a deployment (`provider/m1`), an alias, `router/<policy>`
  (automatic routing under that policy) or `router` (automatic, the key's or router's default).
- The extra body field `router` (the SDKs' `extra_body`): `policy`, `task_type`,
  `data_sensitivity`, `max_cost_usd` (decimal string or number), `latency_target_ms`,
  `min_quality`, `allowed_providers`, `denied_providers`, `disable_fallback`, `tags`.
- Headers `x-router-policy`, `x-router-task-type`, `x-router-data-sensitivity`: the same hints
  for callers that cannot change the body; a header and body field that disagree are refused.
- `metadata` (OpenAI's string map) becomes the request's tags, `router.tags` added over it.

Fields this router does not implement (`logprobs`, `frequency_penalty`, `n` > 1, images, ...) are
refused by name rather than ignored: a caller must not believe a setting took effect. `user` is
accepted and ignored: who calls is the API key's identity, never what the body claims.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from router_service.domain import (
    ChatRequest,
    DataSensitivity,
    GenerationParams,
    Message,
    ModelSelection,
    ResponseFormat,
    ResponseFormatType,
    Role,
    RoutingHints,
    TaskType,
    ToolCall,
    ToolChoice,
    ToolChoiceMode,
    ToolSpec,
)
from router_service.request_rules import (
    ParamPaths,
    ToolCallPaths,
    Violations,
    check_latency_target,
    check_message,
    check_message_count,
    check_min_quality,
    check_params,
    check_response_format,
    check_tags,
    check_tool_call,
    check_tool_choice,
    check_tool_count,
    check_tool_name,
    strict_json,
)

AUTO_MODEL = "router"  # `router` or `router/<policy>`: automatic routing
POLICY_HEADER = "x-router-policy"
TASK_TYPE_HEADER = "x-router-task-type"
SENSITIVITY_HEADER = "x-router-data-sensitivity"
NANOS_PER_USD = 1_000_000_000

_ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,  # OpenAI's newer name for system instructions
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
}
_TOOL_CHOICE = {"auto": ToolChoiceMode.AUTO, "none": ToolChoiceMode.NONE, "required": ToolChoiceMode.REQUIRED}
_FORMATS = {t.value: t for t in ResponseFormatType}
_TASKS = {t.value: t for t in TaskType}
_SENSITIVITY = {s.value: s for s in DataSensitivity}
# Accepted and not used: `user` (identity comes from the key); `parallel_tool_calls` and `store`
# only at the values that change nothing here (see _IGNORED_AT).
_KNOWN = frozenset(
    {
        "model", "messages", "tools", "tool_choice", "response_format", "temperature", "top_p",
        "max_tokens", "max_completion_tokens", "stop", "seed", "n", "stream", "stream_options",
        "metadata", "user", "router", "parallel_tool_calls", "store",
    }
)  # fmt: skip
_IGNORED_AT = {"parallel_tool_calls": (True, None), "store": (False, None)}
_ROUTER_FIELDS = frozenset(
    {
        "policy", "task_type", "data_sensitivity", "max_cost_usd", "latency_target_ms", "min_quality",
        "allowed_providers", "denied_providers", "disable_fallback", "tags",
    }
)  # fmt: skip
_NO_PARAMS = GenerationParams()
_NO_HINTS = RoutingHints()


@dataclass(frozen=True, slots=True)
class DoorRequest:
    chat: ChatRequest
    model: str  # as the caller named it: echoed in the response's `model`
    stream: bool
    include_usage: bool


def parse_body(raw: bytes) -> Mapping[str, Any]:
    """The body as a JSON object, or InvalidRequestError (param "body"). Strict JSON: NaN and
    Infinity are refused, as every upstream refuses them."""
    v = Violations()
    try:
        body = strict_json(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        v.add("body", "must be valid JSON (UTF-8, finite numbers)")
        v.raise_if_any()
    if not isinstance(body, dict):
        v.add("body", "must be a JSON object")
        v.raise_if_any()
    result: dict[str, Any] = body
    return result


def chat_from_openai(
    body: Mapping[str, Any], headers: Mapping[str, str], aliases: Collection[str]
) -> DoorRequest:
    """Validate a chat completions body (and the routing headers): every violation in one
    InvalidRequestError. `aliases`: the catalog's alias names (a `model` naming one is an alias)."""
    v = Violations()
    for name in body:
        if name not in _KNOWN:
            v.add(name, "is not supported by this router")
        elif name in _IGNORED_AT and body[name] not in _IGNORED_AT[name]:
            v.add(name, f"only {_IGNORED_AT[name][0]!r} is supported by this router")
    stream = _bool(body.get("stream"), "stream", v) or False
    include_usage = _stream_options(body.get("stream_options"), stream, v)
    if body.get("n") not in (None, 1):
        v.add("n", "only n=1 is supported")
    router = _object(body.get("router"), "router", v) or {}
    for name in router:
        if name not in _ROUTER_FIELDS:
            v.add(f"router.{name}", "is not a router field")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        v.add("model", "required: a model, deployment, alias, or router/<policy>")
        model = ""
    tools = _tools(body.get("tools"), v)
    hints, policy_from_model = _hints(model, router, headers, v)
    chat = ChatRequest(
        messages=_messages(body.get("messages"), v),
        selection=_selection(model, policy_from_model, router, aliases, v),
        params=_params(body, v),
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), tools, v),
        response_format=_response_format(body.get("response_format"), v),
        hints=hints,
        tags=_tags(body.get("metadata"), router.get("tags"), v),
    )
    v.raise_if_any()
    return DoorRequest(chat=chat, model=model, stream=stream, include_usage=include_usage)


# --- JSON type helpers: the value, or None and a violation ---------------------------------------


def _str(value: Any, path: str, v: Violations) -> str | None:
    if value is None or isinstance(value, str):
        return value
    v.add(path, "must be a string")
    return None


def _bool(value: Any, path: str, v: Violations) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    v.add(path, "must be a boolean")
    return None


def _number(value: Any, path: str, v: Violations) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        v.add(path, "must be a number")
        return None
    return float(value)


def _int(value: Any, path: str, v: Violations) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        v.add(path, "must be an integer")
        return None
    return value


def _object(value: Any, path: str, v: Violations) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    v.add(path, "must be an object")
    return None


def _list(value: Any, path: str, v: Violations) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        v.add(path, "must be an array")
        return []
    return value


def _strings(value: Any, path: str, v: Violations) -> list[str]:
    items = _list(value, path, v)
    if any(not isinstance(item, str) for item in items):
        v.add(path, "must be an array of strings")
        return []
    return items


def _choice(value: Any, table: Mapping[str, Any], path: str, v: Violations) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or value not in table:
        v.add(path, "must be one of " + ", ".join(table))
        return None
    return table[value]


# --- fields ----------------------------------------------------------------------------------------


def _stream_options(value: Any, stream: bool, v: Violations) -> bool:
    options = _object(value, "stream_options", v)
    if options is None:
        return False
    if not stream:
        v.add("stream_options", "only allowed with stream: true")
    for name in options:
        if name != "include_usage":
            v.add(f"stream_options.{name}", "is not supported by this router")
    return _bool(options.get("include_usage"), "stream_options.include_usage", v) or False


def _messages(value: Any, v: Violations) -> tuple[Message, ...]:
    items = _list(value, "messages", v)
    check_message_count(len(items), "messages", v)
    return tuple(_message(m, f"messages[{i}]", v) for i, m in enumerate(items))


def _message(value: Any, path: str, v: Violations) -> Message:
    m = _object(value, path, v)
    if m is None:
        return Message(role=Role.USER)
    role = _choice(m.get("role"), _ROLES, f"{path}.role", v)
    if m.get("role") is None:
        v.add(f"{path}.role", "required")
    role = role or Role.USER
    content = _content(m.get("content"), f"{path}.content", v)
    calls = tuple(
        _tool_call(c, f"{path}.tool_calls[{j}]", v)
        for j, c in enumerate(_list(m.get("tool_calls"), f"{path}.tool_calls", v))
    )
    tool_call_id = _str(m.get("tool_call_id"), f"{path}.tool_call_id", v) or ""
    name = _str(m.get("name"), f"{path}.name", v) or ""
    check_message(role, content, bool(calls), tool_call_id, path, v)
    return Message(role=role, content=content, tool_calls=calls, tool_call_id=tool_call_id, name=name)


def _content(value: Any, path: str, v: Violations) -> str:
    """A string, or an array of text parts (joined); other part types are refused."""
    if value is None or isinstance(value, str):
        return value or ""
    if not isinstance(value, list):
        v.add(path, "must be a string or an array of text parts")
        return ""
    texts = []
    for k, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            v.add(f"{path}[{k}]", "only text parts ({type: text, text: ...}) are supported")
            continue
        texts.append(part["text"])
    return "".join(texts)


def _tool_call(value: Any, path: str, v: Violations) -> ToolCall:
    c = _object(value, path, v) or {}
    if c.get("type", "function") != "function":
        v.add(f"{path}.type", "must be function")
    function = _object(c.get("function"), f"{path}.function", v) or {}
    call_id = _str(c.get("id"), f"{path}.id", v) or ""
    name = _str(function.get("name"), f"{path}.function.name", v) or ""
    arguments = _str(function.get("arguments"), f"{path}.function.arguments", v) or ""
    paths = ToolCallPaths(f"{path}.id", f"{path}.function.name", f"{path}.function.arguments")
    return ToolCall(id=call_id, name=name, arguments_json=check_tool_call(call_id, name, arguments, paths, v))


def _tools(value: Any, v: Violations) -> tuple[ToolSpec, ...]:
    items = _list(value, "tools", v)
    check_tool_count(len(items), "tools", v)
    names: set[str] = set()
    tools = []
    for i, item in enumerate(items):
        path = f"tools[{i}]"
        t = _object(item, path, v) or {}
        if t.get("type") != "function":
            v.add(f"{path}.type", "must be function")
        function = _object(t.get("function"), f"{path}.function", v) or {}
        name = _str(function.get("name"), f"{path}.function.name", v) or ""
        check_tool_name(name, names, f"{path}.function.name", v)
        description = _str(function.get("description"), f"{path}.function.description", v) or ""
        parameters = _object(function.get("parameters"), f"{path}.function.parameters", v) or {}
        tools.append(ToolSpec(name=name, description=description, parameters=parameters))
    return tuple(tools)


def _tool_choice(value: Any, tools: tuple[ToolSpec, ...], v: Violations) -> ToolChoice | None:
    if value is None:
        return None
    name = ""
    if isinstance(value, dict):
        function = _object(value.get("function"), "tool_choice.function", v) or {}
        name = _str(function.get("name"), "tool_choice.function.name", v) or ""
        if value.get("type") != "function":
            v.add("tool_choice.type", "must be function")
        mode = ToolChoiceMode.FUNCTION
    else:
        mode = _choice(value, _TOOL_CHOICE, "tool_choice", v)
        if mode is None:
            return None
    check_tool_choice(mode, name, {t.name for t in tools}, "tool_choice", "tool_choice.function.name", v)
    return ToolChoice(mode=mode, function_name=name)


def _response_format(value: Any, v: Violations) -> ResponseFormat | None:
    rf = _object(value, "response_format", v)
    if rf is None:
        return None
    kind = _choice(rf.get("type"), _FORMATS, "response_format.type", v) or ResponseFormatType.TEXT
    schema, name = None, "response"
    if kind is ResponseFormatType.JSON_SCHEMA:
        spec = _object(rf.get("json_schema"), "response_format.json_schema", v) or {}
        schema = _object(spec.get("schema"), "response_format.json_schema.schema", v)
        name = _str(spec.get("name"), "response_format.json_schema.name", v) or "response"
        check_response_format(kind, schema, "response_format.json_schema.schema", v)
    return ResponseFormat(type=kind, json_schema=schema, schema_name=name)


_PARAM_PATHS = ParamPaths("temperature", "top_p", "max_tokens", "stop")
_COMPLETION_PATHS = ParamPaths("temperature", "top_p", "max_completion_tokens", "stop")


def _params(body: Mapping[str, Any], v: Violations) -> GenerationParams:
    temperature = _number(body.get("temperature"), "temperature", v)
    top_p = _number(body.get("top_p"), "top_p", v)
    max_tokens = _int(body.get("max_tokens"), "max_tokens", v)
    max_completion = _int(body.get("max_completion_tokens"), "max_completion_tokens", v)
    paths = _PARAM_PATHS
    if max_completion is not None:
        if max_tokens is not None and max_tokens != max_completion:
            v.add("max_completion_tokens", "must equal max_tokens when both are set")
        max_tokens, paths = (
            max_completion,
            ParamPaths("temperature", "top_p", "max_completion_tokens", "stop"),
        )
    stop_value = body.get("stop")
    stop = [stop_value] if isinstance(stop_value, str) else _strings(stop_value, "stop", v)
    seed = _int(body.get("seed"), "seed", v)
    check_params(temperature, top_p, max_tokens, stop, paths, v)
    if temperature is top_p is max_tokens is seed is None and not stop:
        return _NO_PARAMS
    return GenerationParams(
        temperature=temperature,
        top_p=top_p,
        max_output_tokens=max_tokens,
        stop_sequences=tuple(stop),
        seed=seed,
    )


def _hinted(
    router: Mapping[str, Any], field: str, headers: Mapping[str, str], header: str, v: Violations
) -> Any:
    """A hint from the body's `router.<field>` or its header; both, when they disagree: refused."""
    in_body, in_header = router.get(field), headers.get(header)
    if in_body is not None and in_header is not None and in_body != in_header:
        v.add(header, f"disagrees with router.{field} ({in_header!r} != {in_body!r})")
    if in_body is not None:
        return in_body
    return in_header


def _hints(
    model: str, router: Mapping[str, Any], headers: Mapping[str, str], v: Violations
) -> tuple[RoutingHints, bool]:
    """The routing hints, and whether `model` named the policy (`router/<policy>`)."""
    policy = _str(_hinted(router, "policy", headers, POLICY_HEADER, v), "router.policy", v) or ""
    from_model = model == AUTO_MODEL or model.startswith(AUTO_MODEL + "/")
    model_policy = model.removeprefix(AUTO_MODEL).removeprefix("/") if from_model else ""
    if model_policy:
        if policy and policy != model_policy:
            v.add("model", f"names policy {model_policy!r} but the request also asks for {policy!r}")
        policy = model_policy
    task = _choice(_hinted(router, "task_type", headers, TASK_TYPE_HEADER, v), _TASKS, "router.task_type", v)
    sensitivity = _choice(
        _hinted(router, "data_sensitivity", headers, SENSITIVITY_HEADER, v),
        _SENSITIVITY,
        "router.data_sensitivity",
        v,
    )
    latency_ms = _number(router.get("latency_target_ms"), "router.latency_target_ms", v)
    latency_s = None if latency_ms is None else latency_ms / 1000
    check_latency_target(latency_s, "router.latency_target_ms", v)
    min_quality = _number(router.get("min_quality"), "router.min_quality", v)
    check_min_quality(min_quality, "router.min_quality", v)
    allowed = _strings(router.get("allowed_providers"), "router.allowed_providers", v)
    denied = _strings(router.get("denied_providers"), "router.denied_providers", v)
    max_cost = _usd_nanos(router.get("max_cost_usd"), "router.max_cost_usd", v)
    if not (policy or task or sensitivity or latency_s or min_quality is not None or allowed or denied) and (
        max_cost is None
    ):
        return _NO_HINTS, from_model
    hints = RoutingHints(
        policy=policy,
        task_type=task,
        max_cost_nanos=max_cost,
        latency_target_s=latency_s,
        min_quality=min_quality,
        data_sensitivity=sensitivity or DataSensitivity.INTERNAL,
        allowed_providers=frozenset(allowed),
        denied_providers=frozenset(denied),
    )
    return hints, from_model


def _usd_nanos(value: Any, path: str, v: Violations) -> int | None:
    """Exact: "0.0125" is 12,500,000 nano-USD. A JSON number is read as written (its repr)."""
    if value is None:
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise InvalidOperation
        amount = Decimal(str(value))
        nanos = amount * NANOS_PER_USD
        if not amount.is_finite() or amount < 0 or nanos != nanos.to_integral_value():
            raise InvalidOperation
    except InvalidOperation:
        v.add(path, 'must be a non-negative USD amount with at most 9 decimals, e.g. "0.01"')
        return None
    return int(nanos)


def _selection(
    model: str, auto: bool, router: Mapping[str, Any], aliases: Collection[str], v: Violations
) -> ModelSelection:
    disable_fallback = _bool(router.get("disable_fallback"), "router.disable_fallback", v) or False
    if auto or not model:
        selection = ModelSelection()
    elif model in aliases:
        selection = ModelSelection(alias=model)
    else:
        selection = ModelSelection(model=model, disable_fallback=disable_fallback)
    if disable_fallback and not selection.model:
        v.add("router.disable_fallback", "only applies to a pinned model")
    return selection


def _tags(metadata: Any, extra: Any, v: Violations) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value, path in ((metadata, "metadata"), (extra, "router.tags")):
        items = _object(value, path, v) or {}
        for key, text in items.items():
            if not isinstance(text, str):
                v.add(f"{path}[{key!r}]", "must be a string")
                continue
            tags[key] = text
    if tags:
        check_tags(tags, "metadata", v)
    return tags
