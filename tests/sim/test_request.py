"""parse_request: what the sim reads from a chat-completions body, and the 400s it gives."""

from __future__ import annotations

from typing import Any

import pytest

from router_service.sim.request import InvalidRequestError, ToolDef, parse_request

USER = {"role": "user", "content": "hi"}


def test_reads_model_texts_stream_options_and_limits() -> None:
    req = parse_request(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url"}]},
                {"role": "assistant", "content": None},
                {"role": "user", "content": "last one"},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 5,
        }
    )
    assert req.model == "m"
    assert req.texts == ("be brief", "a", "", "last one")
    assert req.last_user_text == "last one"
    assert (req.stream, req.include_usage, req.max_tokens) == (True, True, 5)


@pytest.mark.parametrize(
    ("header", "text", "task"),
    [
        (None, "hello", "chat"),
        (None, "please task:code this", "code"),
        ("reasoning", "task:code", "reasoning"),
    ],
)
def test_task_comes_from_header_then_text_then_chat(header: str | None, text: str, task: str) -> None:
    req = parse_request({"model": "m", "messages": [{"role": "user", "content": text}]}, header)
    assert req.task == task


def test_requested_tool_needs_both_the_marker_and_the_tool() -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    body: dict[str, Any] = {"model": "m", "tools": tools}
    asked = parse_request({**body, "messages": [{"role": "user", "content": "call:get_weather now"}]})
    assert asked.requested_tool() == ToolDef("get_weather", {"type": "object"})
    other = parse_request({**body, "messages": [{"role": "user", "content": "call:other"}]})
    assert other.requested_tool() is None
    no_tools = parse_request({"model": "m", "messages": [{"role": "user", "content": "call:get_weather"}]})
    assert no_tools.requested_tool() is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"messages": [USER]}, "model"),
        ({"model": "", "messages": [USER]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"content": "no role"}]}, "messages[0]"),
        ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
        ({"model": "m", "messages": [USER], "stream": "yes"}, "stream"),
        ({"model": "m", "messages": [USER], "stream_options": 1}, "stream_options"),
        ({"model": "m", "messages": [USER], "tools": [{"type": "function"}]}, "tools[0].function"),
        ({"model": "m", "messages": [USER], "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": [USER], "max_completion_tokens": True}, "max_completion_tokens"),
    ],
)
def test_invalid_bodies_name_the_param(body: object, param: str | None) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_request(body)
    assert info.value.param == param
