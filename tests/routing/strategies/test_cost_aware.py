"""Cost-aware: cheapest on the request's real token mix, load spread among the near-equally cheap."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from router_service.catalog import Deployment
from router_service.domain import GenerationParams
from router_service.routing.planner import RequestContext, plan
from router_service.routing.policy import Policy
from router_service.routing.strategies import StrategyParams
from tests.routing.factories import HEALTHY, catalog, deployment, request

CHEAP = Policy("cheap", strategy="cost", max_attempts=4)


def priced(key: str, input_nanos: int, **fields: Any) -> Deployment:
    """Output at four times the input price, so every token type scales together."""
    return deployment(key, input_nanos=input_nanos, output_nanos=4 * input_nanos, **fields)


def test_cheapest_first_then_by_cost() -> None:
    cat = catalog(
        deployment("a/pricey", input_nanos=10_000_000_000, output_nanos=30_000_000_000),
        deployment("b/budget", input_nanos=150_000_000, output_nanos=600_000_000),
        deployment("c/mid", input_nanos=2_000_000_000, output_nanos=8_000_000_000),
    )
    decision = plan(request(), cat, CHEAP, HEALTHY, 0.0)
    assert decision.chain == ("b/budget", "c/mid", "a/pricey")
    scores = {c.key: c.score for c in decision.candidates}
    assert scores["b/budget"] == 1.0
    assert scores["a/pricey"] < scores["c/mid"] < 1.0


def test_spreads_evenly_among_near_equal_cheapest_and_never_picks_the_expensive() -> None:
    cat = catalog(
        priced("a/cheap", 1_000_000_000),
        priced("b/cheap", 1_030_000_000),  # 3% dearer: a tie within 10%
        priced("c/cheap", 1_050_000_000),
        priced("d/dear", 5_000_000_000),
    )
    firsts = Counter(
        plan(request(), cat, CHEAP, HEALTHY, 0.0, context=RequestContext(ticket=t)).chain[0]
        for t in range(300)
    )
    assert firsts == {"a/cheap": 100, "b/cheap": 100, "c/cheap": 100}


def test_tolerance_zero_always_picks_the_single_cheapest() -> None:
    cat = catalog(priced("a/x", 1_000_000_000), priced("b/y", 1_010_000_000))
    policy = Policy("strict", strategy="cost", params=StrategyParams(cost_tolerance=0.0))
    firsts = {
        plan(request(), cat, policy, HEALTHY, 0.0, context=RequestContext(ticket=t)).chain[0]
        for t in range(10)
    }
    assert firsts == {"a/x"}


def test_ranking_uses_the_token_mix_not_list_prices() -> None:
    # Cheap input, dear output vs the opposite: which is cheaper depends on the request.
    cat = catalog(
        deployment("a/cheap-in", input_nanos=100_000_000, output_nanos=20_000_000_000),
        deployment("b/cheap-out", input_nanos=3_000_000_000, output_nanos=1_000_000_000),
    )
    long_prompt = request("x" * 200_000, params=GenerationParams(max_output_tokens=10))
    long_answer = request("short question", params=GenerationParams(max_output_tokens=4_000))
    assert plan(long_prompt, cat, CHEAP, HEALTHY, 0.0).chain[0] == "a/cheap-in"
    assert plan(long_answer, cat, CHEAP, HEALTHY, 0.0).chain[0] == "b/cheap-out"


@pytest.mark.parametrize("floor", [0.6, 0.8])
def test_quality_floor_filters_before_cost(floor: float) -> None:
    cat = catalog(
        priced("a/cheap-bad", 100_000_000, default_quality=0.4),
        priced("b/ok", 1_000_000_000, default_quality=0.7),
        priced("c/great", 5_000_000_000, default_quality=0.9),
    )
    policy = Policy("cheap-ok", strategy="cost", min_quality=floor)
    decision = plan(request(), cat, policy, HEALTHY, 0.0)
    assert decision.chain[0] == ("b/ok" if floor == 0.6 else "c/great")
    assert "a/cheap-bad" not in decision.chain
