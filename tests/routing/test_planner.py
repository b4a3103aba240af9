"""plan(): candidate sets (policy, pin, alias), chain length, soft preferences, the explanation."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from router_service.domain import (
    CandidateView,
    ChatRequest,
    Message,
    Role,
    RouteDecision,
    RoutingHints,
    TaskType,
    ToolSpec,
)
from router_service.errors import UnknownModelError
from router_service.routing.compiled import compiled_policy
from router_service.routing.planner import RequestContext, RoutingEnv, plan
from router_service.routing.policy import Policy
from tests.routing.factories import HEALTHY, FixedLatency, Unavailable, catalog, deployment, request

CAT = catalog(
    deployment("a/small", output_nanos=500_000_000, context_window=8_000, capabilities=frozenset()),
    deployment("b/mid", output_nanos=2_000_000_000, context_window=32_000),
    deployment("c/big", output_nanos=8_000_000_000, context_window=200_000),
    deployment("d/big", output_nanos=9_000_000_000, context_window=200_000),
    aliases={"fast-chat": ("mid", "small")},
)
CHEAP = Policy("cheap", strategy="cost", max_attempts=3)


def test_policy_models_limit_the_candidates_in_the_given_order() -> None:
    decision = plan(request(), CAT, Policy("p", models=("big", "small")), HEALTHY, 0.0)
    assert [c.key for c in decision.candidates] == ["c/big", "d/big", "a/small"]
    assert decision.chain == ("c/big", "d/big", "a/small")


def test_chain_is_capped_at_max_attempts() -> None:
    assert len(plan(request(), CAT, Policy("p", max_attempts=2), HEALTHY, 0.0).chain) == 2


@pytest.mark.parametrize(
    ("pin", "disable_fallback", "chain"),
    [
        ("big", False, ("c/big", "d/big", "a/small")),  # pinned model's deployments first, then by cost
        ("d/big", False, ("d/big", "a/small", "b/mid")),  # a "provider/model" pin is one deployment
        ("big", True, ("c/big",)),  # no fallback: one attempt (the engine may still retry it)
    ],
)
def test_pin_bypasses_scoring_but_keeps_fallbacks(
    pin: str, disable_fallback: bool, chain: tuple[str, ...]
) -> None:
    decision = plan(request(model=pin, disable_fallback=disable_fallback), CAT, CHEAP, HEALTHY, 0.0)
    assert decision.chain == chain
    assert decision.strategy == "pinned"


def test_pin_without_fallback_considers_only_the_pinned_deployments() -> None:
    decision = plan(request(model="big", disable_fallback=True), CAT, CHEAP, HEALTHY, 0.0)
    assert [c.key for c in decision.candidates] == ["c/big", "d/big"]


def test_unavailable_pin_falls_back_to_the_policy() -> None:
    decision = plan(request(model="big"), CAT, CHEAP, Unavailable({"c/big": "down", "d/big": "down"}), 0.0)
    assert decision.chain == ("a/small", "b/mid")


def test_pinned_deployments_are_ordered_by_the_strategy_among_themselves() -> None:
    chains = {
        plan(
            request(model="big"),
            CAT,
            Policy("rr", strategy="round_robin"),
            HEALTHY,
            0.0,
            context=RequestContext(ticket=t),
        ).chain[:2]
        for t in range(2)
    }
    assert chains == {("c/big", "d/big"), ("d/big", "c/big")}


def test_alias_keeps_its_order() -> None:
    decision = plan(request(alias="fast-chat"), CAT, CHEAP, HEALTHY, 0.0)
    assert decision.chain == ("b/mid", "a/small")
    assert decision.strategy == "alias"


@pytest.mark.parametrize(("fields", "kind"), [({"model": "nope"}, "model"), ({"alias": "nope"}, "alias")])
def test_unknown_pin_or_alias(fields: dict[str, Any], kind: str) -> None:
    with pytest.raises(UnknownModelError) as caught:
        plan(request(**fields), CAT, CHEAP, HEALTHY, 0.0)
    assert (caught.value.kind, caught.value.name) == (kind, "nope")


def test_unknown_model_in_a_policy_fails_when_compiled() -> None:
    with pytest.raises(ValueError, match="policy 'p': unknown model 'nope'"):
        compiled_policy(CAT, Policy("p", models=("nope",)))


def test_views_carry_eligibility_scores_and_estimated_costs() -> None:
    decision = plan(request(tools=(ToolSpec("f"),)), CAT, CHEAP, HEALTHY, 0.0)
    views = {c.key: c for c in decision.candidates}
    assert not views["a/small"].eligible and views["a/small"].score == 0.0
    assert views["b/mid"].eligible and views["b/mid"].score == 1.0
    assert all(c.estimated_cost_nanos > 0 for c in decision.candidates)
    assert views["b/mid"].estimated_cost_nanos < views["c/big"].estimated_cost_nanos
    assert (decision.policy, decision.strategy, decision.task_type) == (
        "cheap",
        "cost>round_robin",
        TaskType.CHAT,
    )


def test_task_is_classified_when_not_hinted() -> None:
    decision = plan(request("Write a poem about the sea", task=None), CAT, CHEAP, HEALTHY, 0.0)
    assert decision.task_type is TaskType.CREATIVE


def test_a_custom_classifier_plugs_in_through_the_env() -> None:
    class AlwaysCode:
        def classify(self, request: ChatRequest) -> TaskType:
            return TaskType.CODE

    decision = plan(
        request("hello", task=None), CAT, CHEAP, HEALTHY, 0.0, env=RoutingEnv(classifier=AlwaysCode())
    )
    assert decision.task_type is TaskType.CODE


def test_a_hint_wins_over_classification() -> None:
    messages = (Message(Role.USER, "Write a poem"),)
    decision = plan(request(messages=messages, task=TaskType.EXTRACTION), CAT, CHEAP, HEALTHY, 0.0)
    assert decision.task_type is TaskType.EXTRACTION


def test_candidates_missing_the_latency_target_go_last_but_stay_fallbacks() -> None:
    live = FixedLatency({"a/small": 5.0, "b/mid": 0.5, "c/big": 0.8})  # d/big: no data, not demoted
    hints = RoutingHints(latency_target_s=1.0, task_type=TaskType.CHAT)
    decision = plan(request(hints=hints), CAT, Policy("p", max_attempts=4), HEALTHY, 0.0, live=live)
    assert decision.chain == ("b/mid", "c/big", "d/big", "a/small")


@pytest.mark.parametrize(("ramp_value", "first"), [(0.2, "a/small"), (0.3, "b/mid"), (0.9, "b/mid")])
def test_slow_start_keeps_a_ramping_deployment_first_only_for_its_fraction(
    ramp_value: float, first: str
) -> None:
    live = FixedLatency(ramp={"a/small": 0.25})
    context = RequestContext(ramp_value=ramp_value)
    decision = plan(request(), CAT, Policy("p", max_attempts=4), HEALTHY, 0.0, live=live, context=context)
    assert decision.chain[0] == first
    assert "a/small" in decision.chain  # held back, not excluded


def test_slow_start_never_moves_a_fallback_ahead_of_the_pin() -> None:
    live = FixedLatency(ramp={"c/big": 0.1, "d/big": 0.1})
    context = RequestContext(ramp_value=0.5)
    decision = plan(request(model="big"), CAT, CHEAP, HEALTHY, 0.0, live=live, context=context)
    assert decision.chain[:2] in {("c/big", "d/big"), ("d/big", "c/big")}


def test_held_back_pins_never_push_the_chain_past_its_limit() -> None:
    live = FixedLatency(ramp={"c/big": 0.1})
    context = RequestContext(ramp_value=0.5)
    decision = plan(
        request(model="big"), CAT, Policy("one", max_attempts=1), HEALTHY, 0.0, live=live, context=context
    )
    assert decision.chain == ("d/big",)


def test_views_are_ordinary_candidate_views() -> None:
    decision = plan(request(tools=(ToolSpec("f"),)), CAT, CHEAP, HEALTHY, 0.0)
    for view in decision.candidates:
        assert type(view) is CandidateView
        rebuilt = CandidateView(
            view.provider,
            view.model,
            view.eligible,
            view.exclusion_reason,
            view.score,
            view.estimated_cost_nanos,
            view.quality,
            view.quality_known,
        )
        # Compared and hashed by value (a RouteDecision holding views is hashable). Not frozen:
        # a frozen dataclass's constructor halved the speed of a 50-candidate decision.
        assert view == rebuilt and hash(view) == hash(rebuilt) and repr(view) == repr(rebuilt)


def test_the_decision_is_an_ordinary_route_decision() -> None:
    decision = plan(request(), CAT, CHEAP, HEALTHY, 0.0)
    assert type(decision) is RouteDecision
    rebuilt = RouteDecision(
        decision.policy, decision.strategy, decision.task_type, decision.chain, decision.candidates
    )
    assert decision == rebuilt and hash(decision) == hash(rebuilt) and repr(decision) == repr(rebuilt)
    assert decision.chosen == decision.chain[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.chain = ()  # type: ignore[misc]


def test_compiled_policies_are_reused_per_catalog_and_policy_object() -> None:
    assert compiled_policy(CAT, CHEAP) is compiled_policy(CAT, CHEAP)
    assert compiled_policy(CAT, CHEAP) is not compiled_policy(CAT, Policy("cheap", strategy="cost"))
