"""Quality-aware: best for the task, ties broken by the next strategy, observed scores override priors."""

from __future__ import annotations

from router_service.domain import TaskType
from router_service.routing.planner import plan
from router_service.routing.policy import Policy
from tests.routing.factories import HEALTHY, FixedQuality, catalog, deployment, request

BEST = Policy("best", strategy="quality>cost", max_attempts=3)


def test_highest_quality_for_the_task_first() -> None:
    cat = catalog(
        deployment("a/writer", quality={TaskType.CREATIVE: 0.9, TaskType.CODE: 0.3}),
        deployment("b/coder", quality={TaskType.CREATIVE: 0.4, TaskType.CODE: 0.95}),
    )
    assert plan(request(task=TaskType.CODE), cat, BEST, HEALTHY, 0.0).chain[0] == "b/coder"
    assert plan(request(task=TaskType.CREATIVE), cat, BEST, HEALTHY, 0.0).chain[0] == "a/writer"


def test_equal_quality_within_tolerance_goes_to_the_cheaper() -> None:
    cat = catalog(
        deployment("a/good-dear", default_quality=0.90, output_nanos=5_000_000_000),
        deployment("b/good-cheap", default_quality=0.89, output_nanos=500_000_000),
        deployment("c/worse-cheapest", default_quality=0.70, output_nanos=100_000_000),
    )
    decision = plan(request(), cat, BEST, HEALTHY, 0.0)
    assert decision.chain == ("b/good-cheap", "a/good-dear", "c/worse-cheapest")
    assert {c.key: c.score for c in decision.candidates}["a/good-dear"] == 0.90


def test_cost_ceiling_is_a_floor_before_quality() -> None:
    cat = catalog(
        deployment("a/best", default_quality=0.95, output_nanos=50_000_000_000),
        deployment("b/fine", default_quality=0.80, output_nanos=500_000_000),
    )
    policy = Policy("best-capped", strategy="quality", max_cost_nanos=1_000_000)
    decision = plan(request("hi"), cat, policy, HEALTHY, 0.0)
    assert decision.chain == ("b/fine",)


def test_observed_quality_overrides_the_configured_prior() -> None:
    cat = catalog(deployment("a/x", default_quality=0.9), deployment("b/y", default_quality=0.5))
    observed = FixedQuality({"b/y": 0.99})
    assert plan(request(), cat, BEST, HEALTHY, 0.0, quality=observed).chain[0] == "b/y"
    assert plan(request(), cat, BEST, HEALTHY, 0.0).chain[0] == "a/x"
