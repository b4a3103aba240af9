"""The learned strategy through the real planner: probes stay inside every hard filter and the
budget, pins never probe, floors compare against the posterior, and `Route` explains each pick."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.domain import DataSensitivity, RoutingHints, TaskType
from router_service.errors import NoEligibleCandidateError
from router_service.routing.learning import BudgetConfig, LearnerConfig, PosteriorConfig, QualityLearner
from router_service.routing.policy import Policy
from router_service.routing.router import Router
from router_service.routing.strategies import StrategyParams
from tests.routing.factories import HEALTHY, catalog, deployment, request

KEYS = ("a/tiny", "b/small", "c/mid", "d/big", "e/huge")
PRICES = (10_000_000, 50_000_000, 200_000_000, 1_000_000_000, 5_000_000_000)


def _catalog(restricted: frozenset[str] = frozenset()):  # type: ignore[no-untyped-def]
    return catalog(
        *(
            deployment(
                key,
                input_nanos=price,
                output_nanos=4 * price,
                max_sensitivity=DataSensitivity.RESTRICTED if key in restricted else DataSensitivity.INTERNAL,
            )
            for key, price in zip(KEYS, PRICES, strict=True)
        )
    )


def _router(
    min_quality: float | None = None, restricted: frozenset[str] = frozenset(), seed: int = 1
) -> Router:
    policy = Policy(
        "p",
        strategy="learned",
        max_attempts=2,
        params=StrategyParams(quality_tolerance=0.03),
        min_quality=min_quality,
    )
    return Router(_catalog(restricted), {"p": policy}, "p", rng=random.Random(seed))


def _learner(traffic: float = 0.2, spend: float = 0.3) -> QualityLearner:
    return QualityLearner(
        LearnerConfig(
            posterior=PosteriorConfig(half_life_s=1_000.0),
            exploration=BudgetConfig(traffic_share=traffic, spend_share=spend, half_life_s=1e9),
        )
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    traffic=st.floats(0.0, 1.0),
    spend=st.floats(0.0, 1.0),
    cap=st.sampled_from([None, 2_000, 20_000, 200_000]),
    restricted=st.frozensets(st.sampled_from(KEYS)),
    scores=st.lists(st.tuples(st.sampled_from(KEYS), st.floats(0.0, 1.0)), max_size=30),
)
def test_probes_never_break_caps_filters_or_the_budget(
    seed: int,
    traffic: float,
    spend: float,
    cap: int | None,
    restricted: frozenset[str],
    scores: list[tuple[str, float]],
) -> None:
    router, learner = _router(restricted=restricted, seed=seed), _learner(traffic, spend)
    for t, (key, score) in enumerate(scores):
        learner.observe(key, "chat", score, float(t))
    hints = RoutingHints(
        task_type=TaskType.CHAT, max_cost_nanos=cap, data_sensitivity=DataSensitivity.RESTRICTED
    )
    probes = served = 0  # served: requests with a choice (a single eligible one is not ranked)
    for n in range(60):
        try:
            decision = router.route(request(hints=hints), HEALTHY, 100.0 + n, quality=learner)
        except NoEligibleCandidateError:
            continue
        served += sum(c.eligible for c in decision.candidates) > 1  # one eligible: no choice to make
        chosen = next(c for c in decision.candidates if c.key == decision.chosen)
        assert chosen.key in restricted  # the sensitivity filter holds for probes too
        assert cap is None or chosen.estimated_cost_nanos <= cap
        assert [c.key for c in decision.candidates if c.exploration] in ([], [decision.chosen])
        probes += chosen.exploration
    budget = learner.budget
    assert probes == pytest.approx(budget.explored)
    assert budget.explored <= traffic * budget.requests + 1 + 1e-9
    assert budget.explore_spend <= spend * budget.spend + 1e-6
    assert budget.requests == pytest.approx(served)


def test_an_untried_candidate_is_probed_and_a_pinned_call_never_is() -> None:
    router, learner = _router(), _learner(traffic=1.0, spend=1.0)
    for t in range(30):  # the cheapest is known to be decent; nothing else was ever tried
        learner.observe("a/tiny", "code", 0.7, float(t))
    auto = [router.route(request(task=TaskType.CODE), HEALTHY, 40.0 + n, quality=learner) for n in range(200)]
    probed = {d.chosen for d in auto if any(c.exploration for c in d.candidates)}
    assert probed and "a/tiny" not in probed
    pinned = [
        router.route(request(task=TaskType.CODE, model="tiny"), HEALTHY, 300.0 + n, quality=learner)
        for n in range(50)
    ]
    assert all(d.chosen == "a/tiny" and not any(c.exploration for c in d.candidates) for d in pinned)


def test_route_shows_each_candidates_estimate_uncertainty_and_sample_count() -> None:
    router, learner = _router(), _learner(traffic=0.0, spend=0.0)
    for t in range(4):
        learner.observe("c/mid", "chat", 0.9, float(t))
    decision = router.route(request(), HEALTHY, 5.0, quality=learner)
    by_key = {c.key: c for c in decision.candidates}
    assert by_key["c/mid"].quality_samples == pytest.approx(4.0, rel=0.01)  # decayed a little
    assert by_key["a/tiny"].quality_samples == 0.0
    assert 0 < by_key["c/mid"].quality_sd < by_key["a/tiny"].quality_sd
    assert by_key["c/mid"].quality == by_key["c/mid"].score > 0.8
    assert not any(c.exploration for c in decision.candidates)  # no budget: never a probe


def test_a_floor_excludes_on_evidence_and_readmits_the_candidate_as_the_evidence_decays() -> None:
    router, learner = _router(min_quality=0.8), _learner()
    for t in range(20):
        learner.observe("a/tiny", "chat", 0.3, float(t))
    soon = router.route(request(), HEALTHY, 20.0, quality=learner)
    tiny = next(c for c in soon.candidates if c.key == "a/tiny")
    assert (
        not tiny.eligible
        and "below floor 0.80" in tiny.exclusion_reason
        and "20 scores" in tiny.exclusion_reason
    )
    # an unscored candidate is never shut out by the floor: its optimistic bound clears it
    assert all(c.eligible for c in soon.candidates if c.key != "a/tiny")
    later = router.route(request(), HEALTHY, 20.0 + 10 * 1_000.0, quality=learner)  # ten half-lives on
    assert next(c for c in later.candidates if c.key == "a/tiny").eligible
