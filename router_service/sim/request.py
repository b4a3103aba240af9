"""Minimal validation of an OpenAI chat-completions request body into what the sim needs.

Pure. The sim is not a schema validator: it checks only what it reads (model, messages, roles,
content shapes, tools, tool_choice, response_format, stream options, token limits) so that a bad
body gets an OpenAI-style 400 instead of a 500, and everything else is ignored like an upstream
would ignore unknown fields.

Which tool is called (`SimRequest.requested_tool`), following OpenAI's `tool_choice`:
- `"none"`: no tool call, a text answer;
- `"required"`: a tool call: the tool named by `call:<name>` in the last user message if the
  request offers it, else the first tool;
- `{"type": "function", "function": {"name": N}}`: a call of N (which must be among the tools);
- `"auto"` (the default with tools): the model "decides": it calls the tool named by
  `call:<name>` in the last user message when the request offers it, and answers in text
  otherwise. This convention lets a test or a user ask for a tool call without forcing one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

DEFAULT_TASK = "chat"
_TASK_RE = re.compile(r"\btask:([A-Za-z_][\w-]*)")
_CALL_RE = re.compile(r"\bcall:([A-Za-z0-9_-]+)")


class InvalidRequestError(ValueError):
    """A body the sim refuses with HTTP 400; `param` names the offending field like OpenAI does."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ToolDef:
    name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


TOOL_CHOICE_MODES = ("none", "auto", "required")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")


@dataclass(frozen=True, slots=True)
class SimRequest:
    model: str
    texts: tuple[str, ...]  # the text of every message, in order (for token counting)
    last_user_text: str
    task: str
    stream: bool = False
    include_usage: bool = False
    tools: tuple[ToolDef, ...] = ()
    max_tokens: int | None = None
    tool_choice: str = "auto"  # none | auto | required | function
    tool_choice_name: str = ""  # with "function": the tool to call
    response_format: str = "text"  # text | json_object | json_schema
    response_schema: Mapping[str, Any] | None = None  # with json_schema: the schema itself

    def requested_tool(self) -> ToolDef | None:
        """The tool this request gets a call of, or None for a text answer (see the module doc)."""
        if not self.tools or self.tool_choice == "none":
            return None
        if self.tool_choice == "function":
            return next((t for t in self.tools if t.name == self.tool_choice_name), None)
        match = _CALL_RE.search(self.last_user_text)
        named = None if match is None else next((t for t in self.tools if t.name == match.group(1)), None)
        if named is None and self.tool_choice == "required":
            return self.tools[0]
        return named


def parse_request(body: object, task_header: str | None = None) -> SimRequest:
    """Validate a decoded JSON body. The task comes from the `x-sim-task` header, else from
    "task:<name>" in the last user message, else "chat"."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("you must provide a model parameter", "model")
    texts, last_user = _parse_messages(body.get("messages"))
    tools = _parse_tools(body.get("tools"))
    choice, choice_name = _parse_tool_choice(body.get("tool_choice"), tools)
    response_format, response_schema = _parse_response_format(body.get("response_format"))
    return SimRequest(
        model=model,
        texts=texts,
        last_user_text=last_user,
        task=task_header or _task_from_text(last_user),
        stream=_parse_bool(body, "stream"),
        include_usage=_parse_include_usage(body),
        tools=tools,
        max_tokens=_parse_max_tokens(body),
        tool_choice=choice,
        tool_choice_name=choice_name,
        response_format=response_format,
        response_schema=response_schema,
    )


def _parse_messages(raw: object) -> tuple[tuple[str, ...], str]:
    if raw is None:
        raise InvalidRequestError("Missing required parameter: 'messages'.", "messages")
    if not isinstance(raw, list) or not raw:
        raise InvalidRequestError("'messages' must be a non-empty array.", "messages")
    texts: list[str] = []
    last_user = ""
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise InvalidRequestError(
                f"messages[{i}] must be an object with a string 'role'.", f"messages[{i}]"
            )
        text = _content_text(msg.get("content"), i)
        texts.append(text)
        if msg["role"] == "user":
            last_user = text
    return tuple(texts), last_user


def _content_text(content: object, index: int) -> str:
    """A string, null (assistant tool calls), or an array of parts whose text parts count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    raise InvalidRequestError(
        f"messages[{index}].content must be a string or an array of parts.", f"messages[{index}].content"
    )


def _task_from_text(text: str) -> str:
    match = _TASK_RE.search(text)
    return match.group(1) if match else DEFAULT_TASK


def _parse_bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequestError(f"'{name}' must be a boolean.", name)
    return value


def _parse_include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidRequestError("'stream_options' must be an object.", "stream_options")
    return options.get("include_usage") is True


def _parse_tools(raw: object) -> tuple[ToolDef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidRequestError("'tools' must be an array.", "tools")
    tools: list[ToolDef] = []
    for i, tool in enumerate(raw):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequestError(f"tools[{i}].function.name is required.", f"tools[{i}].function")
        params = fn.get("parameters")
        tools.append(ToolDef(fn["name"], params if isinstance(params, dict) else {}))
    return tuple(tools)


def _parse_max_tokens(body: Mapping[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequestError(f"'{name}' must be a positive integer.", name)
        return value
    return None


def _parse_tool_choice(raw: object, tools: tuple[ToolDef, ...]) -> tuple[str, str]:
    """("none" | "auto" | "required" | "function", function name), refused like OpenAI does."""
    if raw is None:
        return ("auto" if tools else "none"), ""
    if not tools:
        raise InvalidRequestError(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
        )
    if isinstance(raw, str):
        if raw not in TOOL_CHOICE_MODES:
            raise InvalidRequestError(
                f"Invalid value: '{raw}'. Supported values are: 'none', 'auto', and 'required'.",
                "tool_choice",
            )
        return raw, ""
    fn = raw.get("function") if isinstance(raw, dict) and raw.get("type") == "function" else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str):
        raise InvalidRequestError(
            "'tool_choice' must be 'none', 'auto', 'required' or {\"type\": \"function\", "
            '"function": {"name": ...}}.',
            "tool_choice",
        )
    if all(t.name != name for t in tools):
        raise InvalidRequestError(
            f"Invalid value for 'tool_choice': function '{name}' is not among the 'tools'.", "tool_choice"
        )
    return "function", name


def _parse_response_format(raw: object) -> tuple[str, Mapping[str, Any] | None]:
    if raw is None:
        return "text", None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in RESPONSE_FORMATS:
        raise InvalidRequestError(
            "'response_format.type' must be one of 'text', 'json_object', 'json_schema'.",
            "response_format.type",
        )
    if kind != "json_schema":
        return str(kind), None
    assert isinstance(raw, dict)
    spec = raw.get("json_schema")
    schema = spec.get("schema", {}) if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(schema, dict):
        raise InvalidRequestError(
            "'response_format.json_schema' must be an object with a string 'name' and an object 'schema'.",
            "response_format.json_schema",
        )
    return "json_schema", schema
