"""The rules a chat request must meet, whichever door it came through.

The gRPC codec (api/codec.py) and the OpenAI-compatible HTTP door (openai_door/request.py) each
read their own wire format, then ask these checks about the values they read: one set of rules,
two front doors. Each check names the field at fault in the caller's own terms (the door passes
the path: `chat.options.temperature` on gRPC, `temperature` over HTTP) and adds to one
`Violations`, so a caller sees every problem at once.

Standard library only: the domain enums and the error types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router_service.domain import ResponseFormatType, Role, ToolChoiceMode
from router_service.errors import FieldViolation, InvalidRequestError

MAX_MESSAGES = 1024
MAX_TOOLS = 128
MAX_STOP_SEQUENCES = 4
MAX_TAGS = 32
MAX_TAG_BYTES = 256
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

REQUEST_ID_RULE = "must be 1-128 characters of [A-Za-z0-9._:-]"
TOOL_NAME_RULE = "must be 1-64 characters of [A-Za-z0-9_-]"
NOT_JSON = "must not contain NaN or Infinity (numbers must be finite to be JSON)"


class Violations:
    """Collects every violation so the caller sees them all at once, not one per retry."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidRequestError(self.items)


def check_request_id(request_id: str, path: str, v: Violations) -> None:
    if request_id and not REQUEST_ID_RE.match(request_id):
        v.add(path, REQUEST_ID_RULE)


def check_message_count(count: int, path: str, v: Violations) -> None:
    if not count:
        v.add(path, "at least one message is required")
    if count > MAX_MESSAGES:
        v.add(path, f"at most {MAX_MESSAGES} messages")


@dataclass(frozen=True, slots=True)
class MessagePaths:
    """Where a door keeps a message's fields (`messages[2]` + these)."""

    tool_calls: str = ".tool_calls"
    tool_call_id: str = ".tool_call_id"
    content: str = ".content"


def check_message(
    role: Role,
    content: str,
    has_tool_calls: bool,
    tool_call_id: str,
    path: str,
    v: Violations,
    paths: MessagePaths = MessagePaths(),
) -> None:
    if has_tool_calls and role is not Role.ASSISTANT:
        v.add(path + paths.tool_calls, "only assistant messages may carry tool calls")
    if role is Role.TOOL and not tool_call_id:
        v.add(path + paths.tool_call_id, "required for tool messages")
    if not content and not has_tool_calls and role is not Role.ASSISTANT:
        v.add(path + paths.content, "must not be empty")


@dataclass(frozen=True, slots=True)
class ToolCallPaths:
    id: str
    name: str
    arguments: str


def check_tool_call(call_id: str, name: str, arguments_json: str, paths: ToolCallPaths, v: Violations) -> str:
    """The call's arguments as sent, "{}" when empty (no arguments), after the checks."""
    if not call_id:
        v.add(paths.id, "must not be empty")
    if not TOOL_NAME_RE.match(name):
        v.add(paths.name, TOOL_NAME_RULE)
    arguments = arguments_json or "{}"
    is_object = json_object(arguments)
    if is_object is None:
        v.add(paths.arguments, "must be valid JSON")
    elif not is_object:
        v.add(paths.arguments, "must be a JSON object")
    return arguments


def check_tool_count(count: int, path: str, v: Violations) -> None:
    if count > MAX_TOOLS:
        v.add(path, f"at most {MAX_TOOLS} tools")


def check_tool_name(name: str, seen: set[str], path: str, v: Violations) -> None:
    """A tool's name: the pattern, and unique among the request's tools (`seen` so far)."""
    if not TOOL_NAME_RE.match(name):
        v.add(path, TOOL_NAME_RULE)
    elif name in seen:
        v.add(path, f"duplicate tool name {name!r}")
    seen.add(name)


def check_tool_choice(
    mode: ToolChoiceMode,
    function_name: str,
    tool_names: Collection[str],
    mode_path: str,
    name_path: str,
    v: Violations,
) -> None:
    if mode is ToolChoiceMode.FUNCTION and function_name not in tool_names:
        v.add(name_path, "must name one of the request's tools")
    if mode in (ToolChoiceMode.REQUIRED, ToolChoiceMode.FUNCTION) and not tool_names:
        v.add(mode_path, "requires at least one tool")


def check_response_format(
    kind: ResponseFormatType, schema: Mapping[str, Any] | None, path: str, v: Violations
) -> None:
    if kind is ResponseFormatType.JSON_SCHEMA and not schema:
        v.add(path, "required with a json_schema response format")


@dataclass(frozen=True, slots=True)
class ParamPaths:
    temperature: str
    top_p: str
    max_tokens: str
    stop: str


def check_params(
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    stop: Sequence[str],
    paths: ParamPaths,
    v: Violations,
) -> None:
    if temperature is not None and not 0.0 <= temperature <= 2.0:
        v.add(paths.temperature, "must be in [0, 2]")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        v.add(paths.top_p, "must be in (0, 1]")
    if max_tokens is not None and max_tokens <= 0:
        v.add(paths.max_tokens, "must be > 0")
    if len(stop) > MAX_STOP_SEQUENCES:
        v.add(paths.stop, f"at most {MAX_STOP_SEQUENCES}")
    if any(not s for s in stop):
        v.add(paths.stop, "must not contain empty strings")


def check_latency_target(seconds: float | None, path: str, v: Violations) -> None:
    if seconds is not None and seconds <= 0:
        v.add(path, "must be positive")


def check_min_quality(min_quality: float | None, path: str, v: Violations) -> None:
    if min_quality is not None and not 0.0 <= min_quality <= 1.0:
        v.add(path, "must be in [0, 1]")


def check_tags(tags: Mapping[str, str], path: str, v: Violations) -> None:
    if len(tags) > MAX_TAGS:
        v.add(path, f"at most {MAX_TAGS} tags")
    for key, value in tags.items():
        if not key or len(key.encode()) > MAX_TAG_BYTES or len(value.encode()) > MAX_TAG_BYTES:
            v.add(
                f"{path}[{key!r}]", f"keys must be non-empty; keys and values at most {MAX_TAG_BYTES} bytes"
            )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str | bytes) -> Any:
    """`json.loads`, but NaN and Infinity are refused (ValueError) as every other parser (and every
    upstream) refuses them; Python's json accepts them by default."""
    return json.loads(text, parse_constant=_reject_constant)


def json_object(text: str) -> bool | None:
    """True when `text` is a JSON object, False when it is other JSON, None when it is not JSON."""
    try:
        return isinstance(strict_json(text), dict)
    except (ValueError, RecursionError):
        return None
