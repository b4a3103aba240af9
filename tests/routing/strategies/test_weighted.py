"""Weighted: canary shares with a fixed seed, zero weights, key-over-model precedence."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from router_service.routing.planner import RequestContext, plan
from router_service.routing.policy import Policy
from router_service.routing.strategies import StrategyParams
from tests.routing.factories import HEALTHY, catalog, deployment, request

CATALOG = catalog(deployment("a/stable"), deployment("b/canary"), deployment("c/unlisted"))
DRAWS = 10_000


def weighted(weights: dict[str, float]) -> Policy:
    return Policy("w", strategy="weighted", params=StrategyParams(weights=weights), max_attempts=3)


def first_choices(policy: Policy, seed: int = 7) -> Counter[str]:
    rng = random.Random(seed)
    return Counter(
        plan(
            request(), CATALOG, policy, HEALTHY, 0.0, context=RequestContext(random_value=rng.random())
        ).chain[0]
        for _ in range(DRAWS)
    )


@pytest.mark.parametrize(
    ("weights", "expected_shares"),
    [
        ({"stable": 95, "canary": 5}, {"a/stable": 0.95, "b/canary": 0.05}),
        ({"stable": 1, "canary": 1}, {"a/stable": 0.5, "b/canary": 0.5}),
        ({"stable": 70, "canary": 20, "unlisted": 10}, {"a/stable": 0.7, "b/canary": 0.2, "c/unlisted": 0.1}),
    ],
)
def test_first_choice_shares_follow_weights(
    weights: dict[str, float], expected_shares: dict[str, float]
) -> None:
    counts = first_choices(weighted(weights))
    assert set(counts) == set(expected_shares)
    for key, share in expected_shares.items():
        assert counts[key] / DRAWS == pytest.approx(share, abs=0.01)


def test_unlisted_and_zero_weight_candidates_are_only_fallbacks() -> None:
    policy = weighted({"stable": 1, "canary": 0})
    assert set(first_choices(policy)) == {"a/stable"}
    chain = plan(request(), CATALOG, policy, HEALTHY, 0.0, context=RequestContext(random_value=0.99)).chain
    assert chain == ("a/stable", "b/canary", "c/unlisted")


def test_deployment_key_weight_overrides_model_name_weight() -> None:
    policy = weighted({"stable": 100, "a/stable": 0, "canary": 1})
    assert set(first_choices(policy)) == {"b/canary"}


@pytest.mark.parametrize(
    ("random_value", "first"),
    [(0.0, "a/stable"), (0.7499, "a/stable"), (0.75, "b/canary"), (0.9999, "b/canary")],
)
def test_sample_boundaries_are_cumulative_weights(random_value: float, first: str) -> None:
    policy = weighted({"stable": 3, "canary": 1})
    context = RequestContext(random_value=random_value)
    assert plan(request(), CATALOG, policy, HEALTHY, 0.0, context=context).chain[0] == first


def test_fallbacks_follow_descending_weight() -> None:
    policy = weighted({"stable": 1, "canary": 5, "unlisted": 3})
    chain = plan(request(), CATALOG, policy, HEALTHY, 0.0, context=RequestContext(random_value=0.0)).chain
    assert chain == ("a/stable", "b/canary", "c/unlisted")


def test_scores_are_weight_shares() -> None:
    decision = plan(request(), CATALOG, weighted({"stable": 3, "canary": 1}), HEALTHY, 0.0)
    assert {c.key: c.score for c in decision.candidates} == {
        "a/stable": 0.75,
        "b/canary": 0.25,
        "c/unlisted": 0.0,
    }


def test_all_zero_weights_keep_config_order() -> None:
    chain = plan(
        request(), CATALOG, weighted({}), HEALTHY, 0.0, context=RequestContext(random_value=0.5)
    ).chain
    assert chain == ("a/stable", "b/canary", "c/unlisted")


def test_policies_with_different_weights_over_one_catalog_keep_their_own() -> None:
    first, second = weighted({"stable": 1}), weighted({"canary": 1})
    context = RequestContext(random_value=0.5)
    for _ in range(2):  # the second round reads the weights each policy kept from the first
        assert plan(request(), CATALOG, first, HEALTHY, 0.0, context=context).chain[0] == "a/stable"
        assert plan(request(), CATALOG, second, HEALTHY, 0.0, context=context).chain[0] == "b/canary"
