"""Latency-aware: lowest rolling P95 first, near-equal fast ones share, cold-start rules."""

from __future__ import annotations

from collections import Counter

import pytest

from router_service.routing.planner import RequestContext, plan
from router_service.routing.policy import Policy
from router_service.routing.strategies import StrategyParams
from tests.routing.factories import HEALTHY, FixedLatency, catalog, deployment, request

CAT = catalog(deployment("a/slow"), deployment("b/fast"), deployment("c/mid"), deployment("d/new"))
FAST = Policy("fast", strategy="latency", max_attempts=4)


def test_lowest_p95_first_and_scores_relative_to_the_fastest() -> None:
    live = FixedLatency({"a/slow": 4.0, "b/fast": 1.0, "c/mid": 2.0, "d/new": 3.0})
    decision = plan(request(), CAT, FAST, HEALTHY, 0.0, live=live)
    assert decision.chain == ("b/fast", "c/mid", "d/new", "a/slow")
    assert {c.key: c.score for c in decision.candidates} == {
        "a/slow": 0.25,
        "b/fast": 1.0,
        "c/mid": 0.5,
        "d/new": pytest.approx(1 / 3),
    }


def test_near_equal_fastest_share_the_load() -> None:
    live = FixedLatency({"a/slow": 4.0, "b/fast": 1.0, "c/mid": 1.05, "d/new": 1.08})
    firsts = Counter(
        plan(request(), CAT, FAST, HEALTHY, 0.0, live=live, context=RequestContext(ticket=t)).chain[0]
        for t in range(300)
    )
    assert firsts == {"b/fast": 100, "c/mid": 100, "d/new": 100}


def test_cold_candidate_is_scored_at_the_median_of_known_p95s() -> None:
    live = FixedLatency({"a/slow": 4.0, "b/fast": 1.0, "c/mid": 2.0})  # d/new has no data
    chain = plan(request(), CAT, FAST, HEALTHY, 0.0, live=live).chain
    assert chain.index("b/fast") < chain.index("d/new") < chain.index("a/slow")
    # Median of (1, 2, 4) is 2: d/new ties with c/mid, so it gets its share of traffic.
    firsts_second = Counter(
        plan(request(), CAT, FAST, HEALTHY, 0.0, live=live, context=RequestContext(ticket=t)).chain[1]
        for t in range(10)
    )
    assert set(firsts_second) == {"c/mid", "d/new"}


def test_configured_cold_start_prior_wins_over_the_median() -> None:
    live = FixedLatency({"a/slow": 4.0, "b/fast": 1.0, "c/mid": 2.0})
    policy = Policy("fast", strategy="latency", params=StrategyParams(cold_start_p95_s=0.5), max_attempts=4)
    assert plan(request(), CAT, policy, HEALTHY, 0.0, live=live).chain[0] == "d/new"


def test_without_any_data_everyone_ties_and_rotates() -> None:
    firsts = Counter(
        plan(request(), CAT, FAST, HEALTHY, 0.0, live=FixedLatency(), context=RequestContext(ticket=t)).chain[
            0
        ]
        for t in range(8)
    )
    assert firsts == {"a/slow": 2, "b/fast": 2, "c/mid": 2, "d/new": 2}


def test_streaming_ranks_by_time_to_first_token() -> None:
    live = FixedLatency(
        p95={"a/slow": 1.0, "b/fast": 5.0, "c/mid": 6.0, "d/new": 7.0},
        ttft={"a/slow": 0.9, "b/fast": 0.2, "c/mid": 0.5, "d/new": 0.6},
    )
    unary = plan(request(), CAT, FAST, HEALTHY, 0.0, live=live)
    streaming = plan(request(), CAT, FAST, HEALTHY, 0.0, live=live, context=RequestContext(streaming=True))
    assert unary.chain[0] == "a/slow"
    assert streaming.chain[0] == "b/fast"
