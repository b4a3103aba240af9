"""Round-robin: exact rotation in config order, one step per ticket."""

from __future__ import annotations

from collections import Counter

import pytest

from router_service.routing.planner import RequestContext, plan
from router_service.routing.policy import Policy
from tests.routing.factories import HEALTHY, catalog, deployment, request

KEYS = ("a/m1", "b/m2", "c/m3", "d/m4")
CATALOG = catalog(*(deployment(k) for k in KEYS))
POLICY = Policy("rr", strategy="round_robin", max_attempts=4)


def chain_for(ticket: int) -> tuple[str, ...]:
    return plan(request(), CATALOG, POLICY, HEALTHY, 0.0, context=RequestContext(ticket=ticket)).chain


@pytest.mark.parametrize(
    ("ticket", "expected"),
    [
        (0, ("a/m1", "b/m2", "c/m3", "d/m4")),
        (1, ("b/m2", "c/m3", "d/m4", "a/m1")),
        (3, ("d/m4", "a/m1", "b/m2", "c/m3")),
        (4, ("a/m1", "b/m2", "c/m3", "d/m4")),
    ],
)
def test_rotation_starts_at_ticket_and_wraps(ticket: int, expected: tuple[str, ...]) -> None:
    assert chain_for(ticket) == expected


def test_consecutive_tickets_share_first_choices_exactly() -> None:
    firsts = Counter(chain_for(ticket)[0] for ticket in range(400))
    assert firsts == dict.fromkeys(KEYS, 100)


def test_scores_are_equal() -> None:
    decision = plan(request(), CATALOG, POLICY, HEALTHY, 0.0)
    assert {c.score for c in decision.candidates} == {1.0}
    assert decision.strategy == "round_robin"
