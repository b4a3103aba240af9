"""The deterministic answer: text, token usage rules, tool calls and quality."""

from __future__ import annotations

import json
import math

import pytest

from router_service.sim.answer import answer_words, compose_answer, estimate_prompt_tokens
from router_service.sim.profile import SimProfile
from router_service.sim.request import SimRequest, ToolDef


def _request(text: str = "hello world", **kw: object) -> SimRequest:
    return SimRequest(model="m", texts=("sys", text), last_user_text=text, task="chat", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("texts", "tokens"), [((), 0), (("abcd",), 1), (("abcde",), 2), (("ab", "cd", "e"), 2)]
)
def test_prompt_tokens_are_ceil_of_chars_over_four(texts: tuple[str, ...], tokens: int) -> None:
    assert estimate_prompt_tokens(texts) == tokens


def test_answer_is_deterministic_and_padded_to_answer_tokens() -> None:
    profile = SimProfile(answer_tokens=20, cached_prompt_fraction=0.5)
    a, b = compose_answer(_request(), profile), compose_answer(_request(), profile)
    assert a == b
    assert a.content.startswith("Simulated answer from m to: hello world ")
    assert len(a.words) == a.usage.completion_tokens == 20
    assert a.usage.prompt_tokens == math.ceil(len("syshello world") / 4)
    assert a.usage.cached_tokens == math.floor(a.usage.prompt_tokens * 0.5)
    assert a.finish_reason == "stop"
    assert "".join(a.content_deltas()) == a.content


def test_prompt_prefix_is_cut_at_forty_characters() -> None:
    words = answer_words("m", "x" * 100, 50)
    assert words[5] == "x" * 40


def test_short_answer_tokens_truncate_the_head() -> None:
    assert answer_words("m", "hello", 2) == ("Simulated", "answer")


def test_max_tokens_below_answer_length_finishes_with_length() -> None:
    answer = compose_answer(_request(max_tokens=3), SimProfile(answer_tokens=10))
    assert answer.usage.completion_tokens == 3
    assert answer.finish_reason == "length"


def test_quality_follows_the_task() -> None:
    profile = SimProfile(quality={"code": 0.95})
    req = SimRequest(model="m", texts=("x",), last_user_text="x", task="code")
    assert compose_answer(req, profile).quality == 0.95


def test_tool_call_arguments_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["c", "f"]},
        },
    }
    req = _request("call:forecast please", tools=(ToolDef("forecast", schema),))
    answer = compose_answer(req, SimProfile())
    assert answer.finish_reason == "tool_calls"
    assert answer.words == ()
    call = answer.tool_call
    assert call is not None and call.name == "forecast" and call.id.startswith("call_")
    assert json.loads(call.arguments) == {"city": "call:forecast please", "days": 1, "unit": "c"}
    fragments = call.argument_fragments()
    assert len(fragments) >= 2 and "".join(fragments) == call.arguments
    assert answer.usage.completion_tokens == math.ceil((len("forecast") + len(call.arguments)) / 4)


def test_tool_without_properties_still_streams_in_fragments() -> None:
    answer = compose_answer(_request("call:ping", tools=(ToolDef("ping"),)), SimProfile())
    assert answer.tool_call is not None
    assert len(answer.tool_call.argument_fragments()) >= 2
