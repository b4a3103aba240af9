"""The cache key: tenants never share one, answer-changing fields always change it, the rest never."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.cache import key as key_module
from router_service.cache.key import ScopeBy, cache_key, tenant_scope
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
from router_service.identity.model import Identity, Scope
from tests.cache.helpers import ACME_SEARCH, ACME_SEARCH_2, GLOBEX_SEARCH, request


def key(identity: Identity, r: ChatRequest, policy: str = "default", by: ScopeBy = ScopeBy.TEAM) -> str:
    return cache_key(tenant_scope(identity, by), r, policy)


def test_a_key_is_a_sha256_hex_digest() -> None:
    k = key(ACME_SEARCH, request())
    assert len(k) == 64 and int(k, 16) >= 0


def test_byte_identical_requests_of_two_customers_get_different_keys() -> None:
    r = request()
    assert key(ACME_SEARCH, r) != key(GLOBEX_SEARCH, r)  # same team name, other customer


def test_team_scope_shares_within_a_team_and_key_scope_does_not() -> None:
    r = request()
    assert key(ACME_SEARCH, r) == key(ACME_SEARCH_2, r)
    assert key(ACME_SEARCH, r, by=ScopeBy.KEY) != key(ACME_SEARCH_2, r, by=ScopeBy.KEY)
    other_team = dataclasses.replace(ACME_SEARCH_2, team="billing")
    assert key(ACME_SEARCH, r) != key(other_team, r)


def test_keys_without_a_team_do_not_share_under_team_scope() -> None:
    a = Identity(key_id="k_a", customer="acme")
    b = Identity(key_id="k_b", customer="acme")
    assert key(a, request()) != key(b, request())


def test_a_team_and_a_key_of_the_same_name_do_not_share() -> None:
    team = Identity(key_id="k_other", team="x", customer="acme")
    teamless_key = Identity(key_id="x", customer="acme")
    assert key(team, request()) != key(teamless_key, request())


@pytest.mark.parametrize(
    "change",
    [
        {"allowed_models": frozenset({"gpt-small"})},
        {"allowed_aliases": frozenset({"fast"})},
        {"allowed_policies": frozenset({"default"})},
        {"allowed_regions": frozenset({"eu"})},
        {"min_sensitivity": DataSensitivity.RESTRICTED},
        {"default_policy": "cheap"},
    ],
)
def test_keys_of_one_team_with_different_access_rules_do_not_share(change: dict[str, object]) -> None:
    restricted = dataclasses.replace(ACME_SEARCH_2, **change)  # type: ignore[arg-type]
    assert key(ACME_SEARCH, request()) != key(restricted, request())


def test_what_does_not_change_the_answer_does_not_change_the_key() -> None:
    r = request()
    tagged = dataclasses.replace(r, tags={"request_id": "r-1", "trace": "abc", "idempotency_key": "i-9"})
    who = dataclasses.replace(
        ACME_SEARCH, user="alice", labels={"env": "prod"}, scopes=frozenset({Scope.COMPLETE})
    )
    assert key(ACME_SEARCH, r) == key(who, tagged)


def test_equal_numbers_spelled_differently_are_one_key() -> None:
    def at(temperature: float) -> ChatRequest:
        return dataclasses.replace(request(), params=GenerationParams(temperature, max_output_tokens=64))

    zero_int, minus_zero = at(0), at(-0.0)
    assert key(ACME_SEARCH, zero_int) == key(ACME_SEARCH, request()) == key(ACME_SEARCH, minus_zero)


def test_tool_schema_key_order_does_not_matter_but_content_does() -> None:
    def with_tool(params: dict[str, object]) -> ChatRequest:
        return dataclasses.replace(request(), tools=(ToolSpec("f", "d", params),))

    a = with_tool({"type": "object", "properties": {"q": {"type": "string"}}})
    b = with_tool({"properties": {"q": {"type": "string"}}, "type": "object"})
    c = with_tool({"type": "object", "properties": {"q": {"type": "integer"}}})
    assert key(ACME_SEARCH, a) == key(ACME_SEARCH, b) != key(ACME_SEARCH, c)


def test_an_unserializable_schema_value_still_gives_a_key() -> None:
    odd = dataclasses.replace(request(), tools=(ToolSpec("f", "d", {"x": object()}),))
    assert len(key(ACME_SEARCH, odd)) == 64


def test_text_moved_from_one_message_to_the_next_changes_the_key() -> None:
    # The contents are hashed as raw bytes after the rest: their lengths keep the boundaries.
    def split(first: str, second: str) -> ChatRequest:
        return dataclasses.replace(
            request(), messages=(Message(Role.USER, first), Message(Role.USER, second))
        )

    assert key(ACME_SEARCH, split("ab", "c")) != key(ACME_SEARCH, split("a", "bc"))
    assert key(ACME_SEARCH, split("a\n", "")) != key(ACME_SEARCH, split("a", "\n"))


def test_a_lone_surrogate_in_a_message_still_gives_a_key() -> None:
    odd = dataclasses.replace(request(), messages=(Message(Role.USER, "\ud800 x"),))
    assert key(ACME_SEARCH, odd) != key(ACME_SEARCH, request())


def test_the_policy_routed_with_changes_the_key() -> None:
    assert key(ACME_SEARCH, request(), "default") != key(ACME_SEARCH, request(), "cheap")


# --- every answer-changing field changes the key ------------------------------------------------

Mutation = Callable[[ChatRequest, str], ChatRequest]


def _params(r: ChatRequest, **change: object) -> ChatRequest:
    return dataclasses.replace(r, params=dataclasses.replace(r.params, **change))  # type: ignore[arg-type]


def _hints(r: ChatRequest, **change: object) -> ChatRequest:
    return dataclasses.replace(r, hints=dataclasses.replace(r.hints, **change))  # type: ignore[arg-type]


def _last_message(r: ChatRequest, **change: object) -> ChatRequest:
    last = dataclasses.replace(r.messages[-1], **change)  # type: ignore[arg-type]
    return dataclasses.replace(r, messages=(*r.messages[:-1], last))


# Each takes the request and a non-empty text, and must return a request that asks something else.
MUTATIONS: dict[str, Mutation] = {
    "content": lambda r, s: _last_message(r, content=r.messages[-1].content + s),
    "role": lambda r, s: _last_message(
        r, role=Role.ASSISTANT if r.messages[-1].role is not Role.ASSISTANT else Role.USER
    ),
    "name": lambda r, s: _last_message(r, name=s),
    "tool_call_id": lambda r, s: _last_message(r, tool_call_id=s),
    "tool_calls": lambda r, s: _last_message(r, tool_calls=(ToolCall("c", s, "{}"),)),
    "extra message": lambda r, s: dataclasses.replace(r, messages=(*r.messages, Message(Role.USER, s))),
    "model": lambda r, s: dataclasses.replace(r, selection=ModelSelection(model=r.selection.model + s)),
    "alias": lambda r, s: dataclasses.replace(r, selection=ModelSelection(alias=r.selection.alias + s)),
    "disable_fallback": lambda r, s: dataclasses.replace(
        r, selection=dataclasses.replace(r.selection, disable_fallback=not r.selection.disable_fallback)
    ),
    "temperature": lambda r, s: _params(r, temperature=(r.params.temperature or 0.0) + 0.5),
    "top_p": lambda r, s: _params(r, top_p=0.5 if r.params.top_p != 0.5 else 0.25),
    "max_output_tokens": lambda r, s: _params(r, max_output_tokens=(r.params.max_output_tokens or 0) + 1),
    "stop_sequences": lambda r, s: _params(r, stop_sequences=(*r.params.stop_sequences, s)),
    "seed": lambda r, s: _params(r, seed=(r.params.seed or 0) + 1),
    "tools": lambda r, s: dataclasses.replace(r, tools=(*r.tools, ToolSpec(s))),
    "tool_choice": lambda r, s: dataclasses.replace(r, tool_choice=ToolChoice(ToolChoiceMode.FUNCTION, s)),
    "response_format": lambda r, s: dataclasses.replace(
        r, response_format=ResponseFormat(ResponseFormatType.JSON_SCHEMA, {"title": s}, s)
    ),
    "hints.policy": lambda r, s: _hints(r, policy=r.hints.policy + s),
    "hints.task_type": lambda r, s: _hints(
        r, task_type=TaskType.CODE if r.hints.task_type is not TaskType.CODE else TaskType.CHAT
    ),
    "hints.max_cost": lambda r, s: _hints(r, max_cost_nanos=(r.hints.max_cost_nanos or 0) + 1),
    "hints.latency": lambda r, s: _hints(r, latency_target_s=(r.hints.latency_target_s or 0.0) + 1.0),
    "hints.min_quality": lambda r, s: _hints(r, min_quality=0.5 if r.hints.min_quality != 0.5 else 0.75),
    "hints.sensitivity": lambda r, s: _hints(
        r,
        data_sensitivity=DataSensitivity.RESTRICTED
        if r.hints.data_sensitivity is not DataSensitivity.RESTRICTED
        else DataSensitivity.PUBLIC,
    ),
    "hints.allowed": lambda r, s: _hints(r, allowed_providers=r.hints.allowed_providers | {"p" + s}),
    "hints.denied": lambda r, s: _hints(r, denied_providers=r.hints.denied_providers | {"p" + s}),
}

_text = st.text(min_size=0, max_size=12)
requests = st.builds(
    ChatRequest,
    messages=st.lists(
        st.builds(Message, role=st.sampled_from(Role), content=_text), min_size=1, max_size=3
    ).map(tuple),
    selection=st.builds(ModelSelection, model=_text, alias=_text, disable_fallback=st.booleans()),
    params=st.builds(
        GenerationParams,
        temperature=st.none() | st.floats(0, 2),
        top_p=st.none() | st.floats(0, 1),
        max_output_tokens=st.none() | st.integers(1, 10_000),
        stop_sequences=st.lists(_text, max_size=2).map(tuple),
        seed=st.none() | st.integers(0, 2**31),
    ),
    hints=st.builds(RoutingHints, policy=_text, task_type=st.none() | st.sampled_from(TaskType)),
    tags=st.dictionaries(_text, _text, max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(r=requests, field=st.sampled_from(sorted(MUTATIONS)), text=st.text(min_size=1, max_size=8))
def test_any_change_to_an_answer_changing_field_changes_the_key(
    r: ChatRequest, field: str, text: str
) -> None:
    changed = MUTATIONS[field](r, text)
    assert changed != r
    assert key(ACME_SEARCH, changed) != key(ACME_SEARCH, r)


@settings(max_examples=100, deadline=None)
@given(r=requests, tags=st.dictionaries(_text, _text, max_size=3))
def test_tags_never_change_the_key(r: ChatRequest, tags: dict[str, str]) -> None:
    assert key(ACME_SEARCH, dataclasses.replace(r, tags=tags)) == key(ACME_SEARCH, r)


def spelled_out(r: ChatRequest, policy: str = "default") -> str:
    """The key with the header memo empty: the header spelled out from the request."""
    key_module._HEADERS.clear()
    return key(ACME_SEARCH, r, policy)


@settings(max_examples=100, deadline=None)
@given(rs=st.lists(requests, min_size=2, max_size=6), policy=st.sampled_from(["default", "cheap"]))
def test_a_remembered_header_keys_as_the_spelled_out_one(rs: list[ChatRequest], policy: str) -> None:
    fresh = [spelled_out(r, policy) for r in rs]
    key_module._HEADERS.clear()
    remembered = [key(ACME_SEARCH, r, policy) for r in rs + rs]  # the second pass from the memo
    assert remembered == fresh + fresh
    # Requests equal but for the policy never share a remembered header.
    others = [key(ACME_SEARCH, r, policy + "-other") for r in rs]
    assert all(other != mine for other, mine in zip(others, fresh, strict=True))


def test_the_header_memo_is_bounded_and_still_keys_right_once_cleared() -> None:
    r = request()
    expected = spelled_out(r)
    for n in range(key_module._HEADERS_MAX + 5):
        key(ACME_SEARCH, dataclasses.replace(r, params=GenerationParams(0.0, max_output_tokens=n + 1)))
        assert len(key_module._HEADERS) <= key_module._HEADERS_MAX
    assert key(ACME_SEARCH, r) == expected


def test_a_long_header_is_spelled_every_time_not_kept() -> None:
    """Tool schemas or call arguments of kilobytes are not held by the memo after their request."""
    r = dataclasses.replace(request(), tools=(ToolSpec("f", "x" * 5000, {"type": "object"}),))
    expected = spelled_out(r)
    assert key(ACME_SEARCH, r) == expected
    assert not key_module._HEADERS  # neither call kept it
    short = request()
    key(ACME_SEARCH, short)
    assert len(key_module._HEADERS) == 1  # a short one is still remembered


def test_a_known_request_keys_as_the_previous_release_did() -> None:
    """Replicas of two releases share one Redis during a rollout: a change to the normalization
    must bump KEY_VERSION (then this digest changes on purpose), never change keys silently."""
    r = ChatRequest(
        messages=(
            Message(Role.SYSTEM, "Be brief."),
            Message(Role.USER, "2+2?"),
            Message(Role.ASSISTANT, "", (ToolCall("c1", "add", '{"a":2,"b":2}'),)),
            Message(Role.TOOL, "4", (), "c1"),
        ),
        params=GenerationParams(temperature=0.0, max_output_tokens=64, seed=7),
        hints=RoutingHints(
            policy="default", task_type=TaskType.REASONING, data_sensitivity=DataSensitivity.RESTRICTED
        ),
    )
    who = Identity(key_id="k1", team="search", customer="acme")
    # Computed by the tree at 5db81d2 (before the header memo and the `_value_` reads).
    assert key(who, r) == "4ea68c75542dcc090d4ef49f38bb27d2cd182eebffe1bd5e3fcd3b8361de57c1"
