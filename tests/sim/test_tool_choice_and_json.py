"""The sim honours OpenAI's `tool_choice` and `response_format`: forced tool calls (unary and
streamed, finish_reason tool_calls) with arguments valid against the tool's schema, no call with
"none", the documented `call:<name>` rule with "auto", and JSON answers (json_object: an object;
json_schema: valid against the schema), refusing malformed values with OpenAI-style 400s."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest

from router_service.sim.answer import compose_answer
from router_service.sim.profile import SimConfig, SimProfile
from router_service.sim.request import InvalidRequestError, parse_request
from router_service.sim.server import SimServer

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 1},
        "unit": {"type": "string", "enum": ["c", "f"]},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {
        "type": "function",
        "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
    },
]
REPORT = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "level": {"type": "string", "enum": ["low", "high"]},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
            "minItems": 1,
        },
    },
    "required": ["title", "score", "level", "items"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "report", "schema": REPORT, "strict": True}}


def _body(content: str = "What is the weather in Paris?", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


# --- pure: which tool, which content ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "tool_choice", "called"),
    [
        ("weather?", "required", "get_weather"),  # forced: the first tool...
        ("call:get_time now", "required", "get_time"),  # ...or the one the prompt names
        ("weather?", {"type": "function", "function": {"name": "get_time"}}, "get_time"),
        ("call:get_weather", {"type": "function", "function": {"name": "get_time"}}, "get_time"),
        ("call:get_weather", "none", None),
        ("call:get_weather", "auto", "get_weather"),  # auto: only when the prompt names a tool
        ("weather?", "auto", None),
        ("call:get_weather", None, "get_weather"),  # no tool_choice with tools is auto
        ("call:unknown", "auto", None),
    ],
)
def test_which_tool_is_called(content: str, tool_choice: object, called: str | None) -> None:
    extra = {"tools": TOOLS} if tool_choice is None else {"tools": TOOLS, "tool_choice": tool_choice}
    answer = compose_answer(parse_request(_body(content, **extra)), SimProfile())
    if called is None:
        assert answer.tool_call is None and answer.finish_reason == "stop"
        return
    assert answer.tool_call is not None and answer.tool_call.name == called
    assert answer.finish_reason == "tool_calls"
    schema = WEATHER if called == "get_weather" else TOOLS[1]["function"]["parameters"]  # type: ignore[index]
    jsonschema.validate(json.loads(answer.tool_call.arguments), schema)


def test_forced_call_arguments_carry_required_properties_of_the_right_types() -> None:
    answer = compose_answer(parse_request(_body(tools=TOOLS, tool_choice="required")), SimProfile())
    assert answer.tool_call is not None
    assert json.loads(answer.tool_call.arguments) == {
        "city": "What is the weather in Paris?",
        "days": 1,
        "unit": "c",
    }


def test_json_object_mode_answers_a_json_object() -> None:
    answer = compose_answer(parse_request(_body(response_format={"type": "json_object"})), SimProfile())
    value = json.loads(answer.content)
    assert isinstance(value, dict) and value["answer"].startswith("Simulated answer from m")
    assert answer.tool_call is None and answer.finish_reason == "stop"
    assert "".join(answer.content_deltas()) == answer.content


def test_json_schema_mode_answers_a_conforming_value() -> None:
    answer = compose_answer(parse_request(_body(response_format=JSON_SCHEMA)), SimProfile())
    value = json.loads(answer.content)
    jsonschema.validate(value, REPORT)
    assert answer.usage.completion_tokens == -(-len(answer.content) // 4)


def test_a_json_answer_over_max_tokens_is_cut_with_finish_length() -> None:
    answer = compose_answer(parse_request(_body(response_format=JSON_SCHEMA, max_tokens=3)), SimProfile())
    assert answer.finish_reason == "length" and len(answer.content) == 12
    assert answer.usage.completion_tokens == 3


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),  # no tools
        ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function"}}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"response_format": "json"}, "response_format.type"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
            "response_format.json_schema",
        ),
    ],
)
def test_malformed_tool_choice_or_response_format_is_refused(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as error:
        parse_request(_body(**extra))
    assert error.value.param == param


# --- over HTTP, unary and streamed ---------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with (
        SimServer(SimConfig(default=SimProfile(), seed=1)) as sim,
        httpx.AsyncClient(base_url=sim.url, timeout=5.0) as c,
    ):
        yield c


async def _events(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    async with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        text = (await response.aread()).decode()
    payloads = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


async def test_forced_tool_call_over_http_unary_and_streamed(client: httpx.AsyncClient) -> None:
    body = _body(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    (choice,) = (await client.post("/chat/completions", json=body)).json()["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    jsonschema.validate(json.loads(call["function"]["arguments"]), WEATHER)

    chunks = [c["choices"][0] for c in await _events(client, body)]
    head = chunks[0]["delta"]["tool_calls"][0]
    assert (head["id"], head["function"]["name"]) == (call["id"], "get_weather")
    fragments = "".join(c["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-1])
    assert fragments == call["function"]["arguments"]
    assert chunks[-1]["finish_reason"] == "tool_calls"


async def test_tool_choice_none_answers_text_over_http(client: httpx.AsyncClient) -> None:
    body = _body("call:get_weather", tools=TOOLS, tool_choice="none")
    (choice,) = (await client.post("/chat/completions", json=body)).json()["choices"]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]


async def test_json_schema_answer_over_http_unary_and_streamed(client: httpx.AsyncClient) -> None:
    body = _body(response_format=JSON_SCHEMA)
    (choice,) = (await client.post("/chat/completions", json=body)).json()["choices"]
    jsonschema.validate(json.loads(choice["message"]["content"]), REPORT)
    chunks = [c["choices"][0] for c in await _events(client, body)]
    streamed = "".join(c["delta"].get("content") or "" for c in chunks)
    assert streamed == choice["message"]["content"]
    assert len(chunks) > 3 and chunks[-1]["finish_reason"] == "stop"


async def test_bad_tool_choice_is_an_openai_style_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=_body(tool_choice="required"))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tool_choice"
