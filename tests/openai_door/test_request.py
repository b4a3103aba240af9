"""One set of rules, two doors: the same request through the gRPC codec and the OpenAI body
translation gives the same domain request, and the same bad request the same violations (each
named in its door's terms). Pure: no server."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from router_contract._gen.router.v1 import router_pb2 as pb
from router_service.api import codec
from router_service.domain import ResponseFormatType, Role, ToolChoiceMode
from router_service.errors import InvalidRequestError
from router_service.openai_door.request import DoorRequest, chat_from_openai, parse_body

ALIASES = frozenset({"fast"})
PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}}


def openai(body: dict[str, Any], headers: dict[str, str] | None = None) -> DoorRequest:
    return chat_from_openai({"model": "m1", **body}, headers or {}, ALIASES)


def grpc_chat(**fields: Any) -> pb.ChatRequest:
    return pb.ChatRequest(model=pb.ModelSelector(model="m1"), **fields)


def violations(call: Any) -> set[str]:
    with pytest.raises(InvalidRequestError) as error:
        call()
    return {v.field for v in error.value.violations}


def test_a_full_request_translates_as_the_codec_does() -> None:
    struct = struct_pb2.Struct()
    struct.update(PARAMS)
    grpc = codec.chat_from_proto(
        grpc_chat(
            messages=[
                pb.Message(role=pb.ROLE_SYSTEM, content="Be brief"),
                pb.Message(role=pb.ROLE_USER, content="Weather?"),
                pb.Message(
                    role=pb.ROLE_ASSISTANT,
                    tool_calls=[pb.ToolCall(id="c1", name="weather", arguments_json='{"city":"Paris"}')],
                ),
                pb.Message(role=pb.ROLE_TOOL, content="21C", tool_call_id="c1"),
            ],
            tools=[pb.Tool(name="weather", description="Weather", parameters=struct)],
            tool_choice=pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_FUNCTION, function_name="weather"),
            response_format=pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_OBJECT),
            options=pb.GenerationOptions(
                temperature=0.5, top_p=0.9, max_output_tokens=64, stop_sequences=["END"], seed=7
            ),
            routing=pb.RoutingHints(policy="default", task_type=pb.TASK_TYPE_CODE),
            tags={"team": "search"},
        )
    )
    http = openai(
        {
            "messages": [
                {"role": "system", "content": "Be brief"},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "content": "21C", "tool_call_id": "c1"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "weather", "description": "Weather", "parameters": PARAMS},
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "response_format": {"type": "json_object"},
            "temperature": 0.5,
            "top_p": 0.9,
            "max_completion_tokens": 64,
            "stop": "END",
            "seed": 7,
            "metadata": {"team": "search"},
        },
        {"x-router-policy": "default", "x-router-task-type": "code"},
    ).chat
    assert http == grpc
    assert http.tool_choice is not None and http.tool_choice.mode is ToolChoiceMode.FUNCTION
    assert http.response_format is not None and http.response_format.type is ResponseFormatType.JSON_OBJECT
    assert [m.role for m in http.messages] == [Role.SYSTEM, Role.USER, Role.ASSISTANT, Role.TOOL]


def test_structured_output_and_max_tokens_translate_as_the_codec_does() -> None:
    """json_schema (its schema and name) and the older `max_tokens` spelling, through both doors."""
    struct = struct_pb2.Struct()
    struct.update(PARAMS)
    grpc = codec.chat_from_proto(
        grpc_chat(
            messages=[pb.Message(role=pb.ROLE_USER, content="Weather?")],
            response_format=pb.ResponseFormat(
                type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, json_schema=struct, schema_name="weather"
            ),
            options=pb.GenerationOptions(max_output_tokens=32, stop_sequences=["a", "b"]),
        )
    )
    http = openai(
        {
            "messages": [{"role": "user", "content": "Weather?"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "schema": PARAMS}},
            "max_tokens": 32,
            "stop": ["a", "b"],
        }
    ).chat
    assert http == grpc
    assert http.response_format is not None and http.response_format.json_schema == PARAMS
    assert http.response_format.schema_name == "weather"


def test_model_names() -> None:
    assert openai({"messages": [{"role": "user", "content": "x"}]}).chat.selection.model == "m1"
    alias = chat_from_openai({"model": "fast", "messages": [{"role": "user", "content": "x"}]}, {}, ALIASES)
    assert alias.chat.selection.alias == "fast" and not alias.chat.selection.model
    auto = chat_from_openai(
        {"model": "router/cheap", "messages": [{"role": "user", "content": "x"}]}, {}, ALIASES
    )
    assert auto.chat.hints.policy == "cheap" and not auto.chat.selection.model
    clash = {"model": "router/cheap", "messages": [{"role": "user", "content": "x"}]}
    assert violations(lambda: chat_from_openai(clash, {"x-router-policy": "fast"}, ALIASES)) == {"model"}


# (gRPC chat fields, OpenAI body fields, the gRPC violation, the OpenAI violation): the same rule.
BAD = [
    (
        {"options": pb.GenerationOptions(temperature=2.5)},
        {"temperature": 2.5},
        "chat.options.temperature",
        "temperature",
    ),
    ({"options": pb.GenerationOptions(top_p=0.0)}, {"top_p": 0}, "chat.options.top_p", "top_p"),
    (
        {"options": pb.GenerationOptions(max_output_tokens=0)},
        {"max_tokens": 0},
        "chat.options.max_output_tokens",
        "max_tokens",
    ),
    (
        {"options": pb.GenerationOptions(stop_sequences=["a"] * 5)},
        {"stop": ["a"] * 5},
        "chat.options.stop_sequences",
        "stop",
    ),
    (
        {"options": pb.GenerationOptions(stop_sequences=[""])},
        {"stop": [""]},
        "chat.options.stop_sequences",
        "stop",
    ),
    (
        {"tools": [pb.Tool(name="t"), pb.Tool(name="t")]},
        {"tools": [{"type": "function", "function": {"name": "t"}}] * 2},
        "chat.tools[1].name",
        "tools[1].function.name",
    ),
    (
        {"tool_choice": pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_REQUIRED)},
        {"tool_choice": "required"},
        "chat.tool_choice.mode",
        "tool_choice",
    ),
    (
        {"response_format": pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA)},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "chat.response_format.json_schema",
        "response_format.json_schema.schema",
    ),
    ({"tags": {"": "v"}}, {"metadata": {"": "v"}}, "chat.tags['']", "metadata['']"),
]
USER = [pb.Message(role=pb.ROLE_USER, content="x")]
USER_JSON = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(("grpc_fields", "body", "grpc_field", "http_field"), BAD)
def test_the_same_bad_request_is_refused_by_both(
    grpc_fields: dict[str, Any], body: dict[str, Any], grpc_field: str, http_field: str
) -> None:
    assert violations(lambda: codec.chat_from_proto(grpc_chat(messages=USER, **grpc_fields))) == {grpc_field}
    assert violations(lambda: openai({"messages": USER_JSON, **body})) == {http_field}


def test_message_rules_are_shared() -> None:
    tool_without_id = [pb.Message(role=pb.ROLE_TOOL, content="r")]
    user_with_call = [pb.Message(role=pb.ROLE_USER, content="x", tool_calls=[pb.ToolCall(id="c", name="f")])]
    assert violations(lambda: codec.chat_from_proto(grpc_chat(messages=tool_without_id))) == {
        "chat.messages[0].tool_call_id"
    }
    assert violations(lambda: openai({"messages": [{"role": "tool", "content": "r"}]})) == {
        "messages[0].tool_call_id"
    }
    assert violations(lambda: codec.chat_from_proto(grpc_chat(messages=user_with_call))) == {
        "chat.messages[0].tool_calls"
    }
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    assert violations(
        lambda: openai({"messages": [{"role": "user", "content": "x", "tool_calls": [call]}]})
    ) == {
        "messages[0].tool_calls",
        "messages[0].tool_calls[0].function.arguments",  # a JSON array: the codec's rule too
    }
    assert violations(lambda: openai({"messages": []})) == {"messages"}


def test_unsupported_fields_are_refused_by_name_not_ignored() -> None:
    body = {
        "messages": USER_JSON,
        "n": 2,
        "logprobs": True,
        "frequency_penalty": 0.5,
        "parallel_tool_calls": False,
    }
    assert violations(lambda: openai(body)) == {"n", "logprobs", "frequency_penalty", "parallel_tool_calls"}
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    assert violations(lambda: openai({"messages": image})) == {
        "messages[0].content[0]",
        "messages[0].content",
    }
    assert violations(lambda: openai({"messages": USER_JSON, "stream_options": {"include_usage": True}})) == {
        "stream_options"
    }
    assert openai({"messages": USER_JSON, "user": "someone"}).chat.tags == {}  # identity is the key's


def test_types_are_checked_and_json_is_strict() -> None:
    assert violations(lambda: openai({"messages": USER_JSON, "temperature": "hot", "max_tokens": True})) == {
        "temperature",
        "max_tokens",
    }
    assert violations(lambda: parse_body(b'{"temperature": NaN}')) == {"body"}
    assert violations(lambda: parse_body(b"[1]")) == {"body"}
    assert violations(lambda: parse_body(b"\xff")) == {"body"}


def test_max_cost_is_exact() -> None:
    body = {"messages": USER_JSON, "router": {"max_cost_usd": "0.000000123"}}
    assert openai(body).chat.hints.max_cost_nanos == 123
    assert violations(
        lambda: openai({"messages": USER_JSON, "router": {"max_cost_usd": "0.0000000001"}})
    ) == {"router.max_cost_usd"}


numbers = st.one_of(st.none(), st.floats(-1, 3, allow_nan=False), st.integers(-2, 3))


@settings(max_examples=300, deadline=None)
@given(temperature=numbers, top_p=numbers, max_tokens=st.one_of(st.none(), st.integers(-5, 5)))
def test_parameter_rules_agree(
    temperature: float | None, top_p: float | None, max_tokens: int | None
) -> None:
    """Whatever the values, both doors accept the same requests and name the same fields."""
    options = pb.GenerationOptions()
    body: dict[str, Any] = {"messages": USER_JSON}
    if temperature is not None:
        options.temperature, body["temperature"] = temperature, temperature
    if top_p is not None:
        options.top_p, body["top_p"] = top_p, top_p
    if max_tokens is not None:
        options.max_output_tokens, body["max_tokens"] = max_tokens, max_tokens
    request = grpc_chat(messages=USER, options=options)

    def fields(call: Any, prefix: str) -> set[str]:
        try:
            call()
        except InvalidRequestError as exc:
            return {v.field.removeprefix(prefix) for v in exc.violations}
        return set()

    grpc = fields(lambda: codec.chat_from_proto(request), "chat.options.")
    http = fields(lambda: openai(body), "")
    assert {"max_tokens" if f == "max_output_tokens" else f for f in grpc} == http
