"""Proto <-> internal model: every violation is named; valid requests convert faithfully."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings

from router_contract._gen.router.v1 import router_pb2 as pb
from router_service.api import codec
from router_service.domain import (
    DataSensitivity,
    ResponseFormatType,
    Role,
    TaskType,
    ToolChoiceMode,
)
from router_service.errors import InvalidRequestError
from tests.api.proto_strategies import messages


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


# --- values every caller can send and the codec must name, never crash on ---------------------


def _with_tool(**kwargs: object) -> pb.ChatRequest:
    return pb.ChatRequest(messages=[user()], tools=[pb.Tool(name="f")], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("chat", "field"),
    [
        (pb.ChatRequest(messages=[pb.Message(role=541, content="x")]), "chat.messages[0].role"),  # type: ignore[arg-type]
        (_with_tool(tool_choice=pb.ToolChoice(mode=541)), "chat.tool_choice.mode"),  # type: ignore[arg-type]
        (_with_tool(tool_choice=pb.ToolChoice(mode=-1)), "chat.tool_choice.mode"),  # type: ignore[arg-type]
        (
            pb.ChatRequest(messages=[user()], response_format=pb.ResponseFormat(type=99)),  # type: ignore[arg-type]
            "chat.response_format.type",
        ),
        (pb.ChatRequest(messages=[user()], routing=pb.RoutingHints(task_type=77)), "chat.routing.task_type"),  # type: ignore[arg-type]
        (
            pb.ChatRequest(messages=[user()], routing=pb.RoutingHints(data_sensitivity=2**31 - 1)),  # type: ignore[arg-type]
            "chat.routing.data_sensitivity",
        ),
    ],
)
def test_an_enum_number_the_proto_does_not_define_is_a_violation(chat: pb.ChatRequest, field: str) -> None:
    found = violations(chat)
    assert field in found and "must be one of" in found[field]


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (2**63 - 1, 0),
        (-(2**63), 0),
        (315_576_000_001, 0),
        (1, 1_000_000_000),
        (0, -(2**31)),
        (1, -5),  # mixed signs: not a normal Duration
        (-3, 0),  # valid Duration, but a latency target must be positive
        (0, 0),
    ],
)
def test_latency_target_out_of_range_or_not_positive_is_a_violation(seconds: int, nanos: int) -> None:
    chat = pb.ChatRequest(messages=[user()])
    chat.routing.latency_target.seconds = seconds
    chat.routing.latency_target.nanos = nanos
    assert "chat.routing.latency_target" in violations(chat)


def test_latency_target_at_the_duration_maximum_converts() -> None:
    chat = pb.ChatRequest(messages=[user()])
    chat.routing.latency_target.seconds = 315_576_000_000
    chat.routing.latency_target.nanos = 999_999_999
    _, req = codec.call_from_proto("", chat)
    assert req.hints.latency_target_s == pytest.approx(315_576_000_001)


def _struct_with(number: float, where: str) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    if where == "top":
        s.fields["x"].number_value = number
    elif where == "nested":
        s.fields["properties"].struct_value.fields["x"].struct_value.fields["default"].number_value = number
    else:  # inside a list
        s.fields["enum"].list_value.values.add().number_value = number
    return s


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["top", "nested", "list"])
def test_nan_or_infinity_in_a_struct_is_a_violation(number: float, where: str) -> None:
    tool_params = pb.ChatRequest(
        messages=[user()],
        tools=[pb.Tool(name="a"), pb.Tool(name="b", parameters=_struct_with(number, where))],
    )
    schema = pb.ChatRequest(
        messages=[user()],
        response_format=pb.ResponseFormat(
            type=pb.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, json_schema=_struct_with(number, where)
        ),
    )
    assert "NaN or Infinity" in violations(tool_params)["chat.tools[1].parameters"]
    assert "NaN or Infinity" in violations(schema)["chat.response_format.json_schema"]


def test_every_bad_field_is_reported_at_once() -> None:
    chat = _with_tool(
        tool_choice=pb.ToolChoice(mode=541),  # type: ignore[arg-type]
        response_format=pb.ResponseFormat(type=9, json_schema=_struct_with(float("nan"), "top")),  # type: ignore[arg-type]
    )
    chat.tools[0].parameters.CopyFrom(_struct_with(float("inf"), "list"))
    chat.routing.latency_target.seconds = 2**63 - 1
    assert {
        "chat.tool_choice.mode",
        "chat.response_format.type",
        "chat.response_format.json_schema",
        "chat.tools[0].parameters",
        "chat.routing.latency_target",
    } <= set(violations(chat))


def test_struct_converts_to_the_json_it_stands_for() -> None:
    s = struct_pb2.Struct()
    s.update({"type": "object", "n": 1.5, "ok": True, "none": None, "list": [1, "a", {"b": []}]})
    _, req = codec.call_from_proto(
        "", pb.ChatRequest(messages=[user()], tools=[pb.Tool(name="f", parameters=s)])
    )
    assert req.tools[0].parameters == {
        "type": "object",
        "n": 1.5,
        "ok": True,
        "none": None,
        "list": [1, "a", {"b": []}],
    }


@pytest.mark.parametrize("arguments", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', "[" * 100_000])
def test_tool_call_arguments_must_be_strict_json(arguments: str) -> None:
    chat = pb.ChatRequest(
        messages=[
            pb.Message(
                role=pb.ROLE_ASSISTANT, tool_calls=[pb.ToolCall(id="1", name="f", arguments_json=arguments)]
            )
        ]
    )
    assert violations(chat)["chat.messages[0].tool_calls[0].arguments_json"] == "must be valid JSON"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=messages(pb.CompleteRequest.DESCRIPTOR))
def test_any_request_converts_or_names_its_violations(request: pb.CompleteRequest) -> None:
    """Whatever decodes, the codec answers with a request or InvalidRequestError, nothing else.
    Round-tripped through the wire first, as the server sees it."""
    wire = pb.CompleteRequest.FromString(request.SerializeToString())
    try:
        codec.call_from_proto(wire.request_id, wire.chat)
    except InvalidRequestError as exc:
        assert exc.violations


@settings(max_examples=100, deadline=None)
@given(request=messages(pb.FeedbackRequest.DESCRIPTOR))
def test_any_feedback_converts_or_names_its_violations(request: pb.FeedbackRequest) -> None:
    try:
        codec.feedback_from_proto(request)
    except InvalidRequestError as exc:
        assert exc.violations


def test_a_faulty_tool_call_names_every_field_at_fault_by_its_path() -> None:
    """A valid call is checked with unnamed paths first; a faulty one must still be named."""
    call = pb.ToolCall(id="", name="bad name", arguments_json="[1]")
    chat = pb.ChatRequest(messages=[user(), pb.Message(role=pb.ROLE_ASSISTANT, tool_calls=[call])])
    assert violations(chat) == {
        "chat.messages[1].tool_calls[0].id": "must not be empty",
        "chat.messages[1].tool_calls[0].name": "must be 1-64 characters of [A-Za-z0-9_-]",
        "chat.messages[1].tool_calls[0].arguments_json": "must be a JSON object",
    }


def test_each_prefix_names_its_own_paths() -> None:
    """Field paths are built once per prefix: a second prefix gets its own, not the first's."""
    chat = pb.ChatRequest(options=pb.GenerationOptions(temperature=3), tags={"": "v"})
    for prefix in ("chat", "route.chat"):
        with pytest.raises(InvalidRequestError) as caught:
            codec.chat_from_proto(chat, prefix)
        assert [v.field for v in caught.value.violations] == [
            f"{prefix}.messages",
            f"{prefix}.options.temperature",
            f"{prefix}.tags['']",
        ]
