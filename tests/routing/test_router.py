"""Router: named policies, per-policy round-robin tickets, seeded or sticky draws."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from router_service.domain import RoutingHints, TaskType
from router_service.errors import InvalidRequestError
from router_service.routing.planner import RequestContext, plan
from router_service.routing.policy import Policy
from router_service.routing.router import Router
from router_service.routing.strategies import StrategyParams
from tests.routing.factories import HEALTHY, catalog, deployment, request

CAT = catalog(deployment("a/x"), deployment("b/y"), deployment("c/z"))
POLICIES = {
    "default": Policy("default", strategy="round_robin"),
    "canary": Policy("canary", strategy="weighted", params=StrategyParams(weights={"x": 9, "y": 1})),
    "first": Policy("first", strategy="priority"),
}


def routed(router: Router, policy: str = "", **kwargs: object) -> str:
    hints = RoutingHints(policy=policy, task_type=TaskType.CHAT)
    return router.route(request(hints=hints), HEALTHY, 0.0, **kwargs).chosen  # type: ignore[arg-type]


def test_default_and_named_policies() -> None:
    router = Router(CAT, POLICIES, "default", seed=1)
    assert router.route(request(), HEALTHY, 0.0).policy == "default"
    assert routed(router, "first") == "a/x"


def test_unknown_policy_is_an_invalid_request() -> None:
    router = Router(CAT, POLICIES, "default")
    with pytest.raises(InvalidRequestError) as caught:
        routed(router, "nope")
    assert caught.value.violations[0].field == "hints.policy"


def test_round_robin_tickets_advance_per_request() -> None:
    router = Router(CAT, POLICIES, "default", seed=1)
    assert Counter(routed(router) for _ in range(30)) == {"a/x": 10, "b/y": 10, "c/z": 10}


def test_seeded_routers_make_the_same_weighted_choices() -> None:
    def choices(seed: int) -> list[str]:
        router = Router(CAT, POLICIES, "default", seed=seed)
        return [routed(router, "canary") for _ in range(200)]

    assert choices(5) == choices(5)
    assert Counter(choices(5))["a/x"] / 200 == pytest.approx(0.9, abs=0.05)


def test_sticky_keys_always_get_the_same_choice() -> None:
    router = Router(CAT, POLICIES, "default", seed=1)
    for user in ("alice", "bob", "carol"):
        choices = {routed(router, "canary", sticky_key=user) for _ in range(5)}
        assert len(choices) == 1
    shares = Counter(routed(router, "canary", sticky_key=f"user-{i}") for i in range(2_000))
    assert shares["a/x"] / 2_000 == pytest.approx(0.9, abs=0.03)


@pytest.mark.parametrize(
    ("policies", "default", "message"),
    [
        (POLICIES, "missing", "default policy 'missing' is not defined"),
        ({"a": Policy("b")}, "a", "policies.a: name mismatch"),
        ({"p": Policy("p", models=("nope",))}, "p", "unknown model 'nope'"),
    ],
)
def test_bad_config_fails_at_construction(policies: dict[str, Policy], default: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Router(CAT, policies, default)


def test_route_is_plan_with_the_routers_draws() -> None:
    """Router.route skips building a RequestContext: it must decide exactly as plan() with one."""
    router = Router(CAT, POLICIES, "default", seed=7)
    draws = random.Random(7)
    hints = RoutingHints(policy="canary", task_type=TaskType.CHAT)
    for ticket in range(20):
        context = RequestContext(random_value=draws.random(), ramp_value=draws.random(), ticket=ticket)
        expected = plan(request(hints=hints), CAT, POLICIES["canary"], HEALTHY, 0.0, context=context)
        assert router.route(request(hints=hints), HEALTHY, 0.0) == expected


def test_a_policy_replaced_after_startup_is_the_one_used() -> None:
    router = Router(CAT, POLICIES, "default", seed=1)
    router.policies["first"] = Policy("first", models=("z",), strategy="priority")
    assert routed(router, "first") == "c/z"
