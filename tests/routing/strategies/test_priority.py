"""Priority: the policy's model order, scores falling with position."""

from __future__ import annotations

import pytest

from router_service.routing.planner import RequestContext, plan
from router_service.routing.policy import Policy
from tests.routing.factories import HEALTHY, catalog, deployment, request

CAT = catalog(deployment("a/x"), deployment("b/y"), deployment("c/z"))


def test_follows_policy_model_order_regardless_of_ticket() -> None:
    policy = Policy("p", models=("z", "x", "y"), strategy="priority")
    for ticket in range(3):
        assert plan(request(), CAT, policy, HEALTHY, 0.0, context=RequestContext(ticket=ticket)).chain == (
            "c/z",
            "a/x",
            "b/y",
        )


def test_scores_fall_with_position() -> None:
    decision = plan(request(), CAT, Policy("p", strategy="priority"), HEALTHY, 0.0)
    assert [c.score for c in decision.candidates] == pytest.approx([1.0, 2 / 3, 1 / 3])
