"""Proto <-> internal model: every violation is named; valid requests convert faithfully."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2

from router_service._gen.router.v1 import router_pb2 as pb
from router_service.api import codec
from router_service.domain import (
    DataSensitivity,
    ResponseFormatType,
    Role,
    TaskType,
    ToolChoiceMode,
)
from router_service.errors import InvalidRequestError


def user(text: str = "hi") -> pb.Message:
    return pb.Message(role=pb.ROLE_USER, content=text)


def violations(chat: pb.ChatRequest, request_id: str = "") -> dict[str, str]:
    with pytest.raises(InvalidRequestError) as caught:
        codec.call_from_proto(request_id, chat)
    return {v.field: v.description for v in caught.value.violations}


def test_full_request_converts() -> None:
    params = struct_pb2.Struct()
    params.update({"type": "object", "properties": {"city": {"type": "string"}}})
    chat = pb.ChatRequest(
        messages=[
            pb.Message(role=pb.ROLE_SYSTEM, content="be brief"),
            user("weather?"),
            pb.Message(
                role=pb.ROLE_ASSISTANT,
                tool_calls=[pb.ToolCall(id="c1", name="get", arguments_json='{"a":1}')],
            ),
            pb.Message(role=pb.ROLE_TOOL, tool_call_id="c1", content="sunny"),
        ],
        model=pb.ModelSelector(model="m1", disable_fallback=True),
        options=pb.GenerationOptions(
            temperature=0.2, top_p=0.9, max_output_tokens=100, stop_sequences=["END"], seed=7
        ),
        tools=[pb.Tool(name="get", description="weather", parameters=params)],
        tool_choice=pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_FUNCTION, function_name="get"),
        response_format=pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_OBJECT),
        routing=pb.RoutingHints(
            policy="cheap",
            task_type=pb.TASK_TYPE_CODE,
            min_quality=0.5,
            data_sensitivity=pb.DATA_SENSITIVITY_RESTRICTED,
            denied_providers=["x"],
        ),
        tags={"feature": "search"},
    )
    chat.routing.max_cost.units = 1
    chat.routing.max_cost.nanos = 5
    chat.routing.latency_target.FromMilliseconds(1500)

    request_id, req = codec.call_from_proto("abc-1", chat)

    assert request_id == "abc-1"
    assert [m.role for m in req.messages] == [Role.SYSTEM, Role.USER, Role.ASSISTANT, Role.TOOL]
    assert req.messages[2].tool_calls[0].arguments_json == '{"a":1}'
    assert req.selection.model == "m1" and req.selection.disable_fallback
    assert (req.params.temperature, req.params.top_p, req.params.max_output_tokens) == (0.2, 0.9, 100)
    assert (req.params.stop_sequences, req.params.seed) == (("END",), 7)
    assert req.tools[0].parameters["properties"] == {"city": {"type": "string"}}
    assert req.tool_choice is not None and req.tool_choice.mode is ToolChoiceMode.FUNCTION
    assert req.response_format is not None and req.response_format.type is ResponseFormatType.JSON_OBJECT
    h = req.hints
    assert (h.policy, h.task_type, h.min_quality) == ("cheap", TaskType.CODE, 0.5)
    assert h.max_cost_nanos == 1_000_000_005 and h.latency_target_s == 1.5
    assert h.data_sensitivity is DataSensitivity.RESTRICTED and h.denied_providers == frozenset({"x"})
    assert req.tags == {"feature": "search"}


def test_unset_options_stay_unset() -> None:
    _, req = codec.call_from_proto("", pb.ChatRequest(messages=[user()]))
    assert req.params.temperature is None and req.params.max_output_tokens is None and req.params.seed is None
    assert req.tool_choice is None and req.response_format is None and req.hints.task_type is None


@pytest.mark.parametrize(
    ("chat", "field"),
    [
        (pb.ChatRequest(), "chat.messages"),
        (pb.ChatRequest(messages=[pb.Message(content="x")]), "chat.messages[0].role"),
        (pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER)]), "chat.messages[0].content"),
        (
            pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_TOOL, content="r")]),
            "chat.messages[0].tool_call_id",
        ),
        (
            pb.ChatRequest(
                messages=[
                    pb.Message(role=pb.ROLE_USER, content="x", tool_calls=[pb.ToolCall(id="1", name="f")])
                ]
            ),
            "chat.messages[0].tool_calls",
        ),
        (
            pb.ChatRequest(
                messages=[
                    pb.Message(
                        role=pb.ROLE_ASSISTANT,
                        tool_calls=[pb.ToolCall(id="1", name="f", arguments_json="[1]")],
                    )
                ]
            ),
            "chat.messages[0].tool_calls[0].arguments_json",
        ),
        (pb.ChatRequest(messages=[user()], options=pb.GenerationOptions(top_p=0)), "chat.options.top_p"),
        (
            pb.ChatRequest(messages=[user()], options=pb.GenerationOptions(stop_sequences=["a"] * 5)),
            "chat.options.stop_sequences",
        ),
        (pb.ChatRequest(messages=[user()], tools=[pb.Tool(name="bad name")]), "chat.tools[0].name"),
        (
            pb.ChatRequest(messages=[user()], tools=[pb.Tool(name="f"), pb.Tool(name="f")]),
            "chat.tools[1].name",
        ),
        (
            pb.ChatRequest(
                messages=[user()],
                tool_choice=pb.ToolChoice(mode=pb.TOOL_CHOICE_MODE_FUNCTION, function_name="g"),
            ),
            "chat.tool_choice.function_name",
        ),
        (
            pb.ChatRequest(
                messages=[user()], response_format=pb.ResponseFormat(type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA)
            ),
            "chat.response_format.json_schema",
        ),
        (
            pb.ChatRequest(messages=[user()], routing=pb.RoutingHints(min_quality=1.5)),
            "chat.routing.min_quality",
        ),
        (
            pb.ChatRequest(messages=[user()], model=pb.ModelSelector(alias="", disable_fallback=True)),
            "chat.model.disable_fallback",
        ),
        (pb.ChatRequest(messages=[user()], tags={"": "v"}), "chat.tags['']"),
    ],
)
def test_each_violation_names_its_field(chat: pb.ChatRequest, field: str) -> None:
    assert field in violations(chat)


def test_all_violations_are_reported_together() -> None:
    bad = pb.ChatRequest(options=pb.GenerationOptions(temperature=-1, max_output_tokens=-5))
    assert set(violations(bad, request_id="x" * 200)) == {
        "request_id",
        "chat.messages",
        "chat.options.temperature",
        "chat.options.max_output_tokens",
    }


@pytest.mark.parametrize(
    ("currency", "units", "nanos", "field"),
    [("EUR", 1, 0, "chat.routing.max_cost.currency_code"), ("USD", -1, 0, "chat.routing.max_cost")],
)
def test_max_cost_must_be_non_negative_usd(currency: str, units: int, nanos: int, field: str) -> None:
    chat = pb.ChatRequest(messages=[user()])
    chat.routing.max_cost.currency_code = currency
    chat.routing.max_cost.units = units
    chat.routing.max_cost.nanos = nanos
    assert field in violations(chat)


@pytest.mark.parametrize("nanos", [0, 1, 999_999_999, 1_000_000_000, 123_456_789_012])
def test_money_round_trips(nanos: int) -> None:
    money = codec.nanos_to_money(nanos)
    assert money.currency_code == "USD" and 0 <= money.nanos < 1_000_000_000
    assert money.units * 1_000_000_000 + money.nanos == nanos


def test_feedback_validation() -> None:
    assert codec.feedback_from_proto(pb.FeedbackRequest(request_id="r1", score=1.0)) == ("r1", 1.0, {})
    with pytest.raises(InvalidRequestError) as caught:
        codec.feedback_from_proto(pb.FeedbackRequest(score=-0.1))
    assert {v.field for v in caught.value.violations} == {"request_id", "score"}
