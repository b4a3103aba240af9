"""The learner's parts on exact inputs: posteriors, decay, drift, budget, the pure choice."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_service.domain import TaskType
from router_service.routing.learning import (
    ArmStats,
    BudgetConfig,
    DriftConfig,
    DropDetector,
    ExplorationBudget,
    LearnerConfig,
    PosteriorConfig,
    QualityLearner,
    choose,
)

CONFIG = PosteriorConfig(half_life_s=100.0, prior_strength=1.0, prior_variance=0.04)


def test_an_arm_never_scored_is_its_prior_with_the_prior_uncertainty() -> None:
    posterior = ArmStats().posterior(0.5, CONFIG, 0.0)
    assert (posterior.mean, posterior.count) == (0.5, 0.0)
    assert posterior.sd == pytest.approx(0.2)


def test_scores_move_the_mean_from_the_prior_and_narrow_it() -> None:
    stats = ArmStats()
    for _ in range(9):
        stats.add(0.9, 0.0, CONFIG.half_life_s)
    posterior = stats.posterior(0.5, CONFIG, 0.0)
    assert posterior.mean == pytest.approx((0.5 + 9 * 0.9) / 10)
    # identical scores: only the prior's pseudo-variance is left, over 10 pseudo-scores
    assert posterior.sd == pytest.approx(math.sqrt(0.04 / 10 / 10))
    assert posterior.count == pytest.approx(9.0)


def test_a_noisy_judge_keeps_an_arm_wider_than_a_consistent_one() -> None:
    steady, noisy = ArmStats(), ArmStats()
    for score in (0.5, 0.5, 0.5, 0.5):
        steady.add(score, 0.0, CONFIG.half_life_s)
    for score in (0.1, 0.9, 0.1, 0.9):
        noisy.add(score, 0.0, CONFIG.half_life_s)
    assert noisy.posterior(0.5, CONFIG, 0.0).sd > 2 * steady.posterior(0.5, CONFIG, 0.0).sd


def test_scores_lose_half_their_weight_per_half_life_and_the_posterior_widens() -> None:
    stats = ArmStats()
    for _ in range(8):
        stats.add(1.0, 0.0, CONFIG.half_life_s)
    fresh = stats.posterior(0.5, CONFIG, 0.0)
    aged = stats.posterior(0.5, CONFIG, 100.0)
    assert aged.count == pytest.approx(4.0)
    assert aged.sd > fresh.sd
    assert aged.mean == pytest.approx((0.5 + 4.0) / 5.0)
    stats.decay_to(50.0, CONFIG.half_life_s)
    stats.decay_to(10.0, CONFIG.half_life_s)  # an earlier time ages nothing
    assert stats.weight == pytest.approx(8.0 / math.sqrt(2.0))


def _learner() -> QualityLearner:
    return QualityLearner(LearnerConfig(posterior=PosteriorConfig(half_life_s=1e9)))


def test_a_halved_quality_rings_the_drift_alarm_within_a_few_scores_and_demotes_at_once() -> None:
    rng = random.Random(5)
    learner = _learner()
    for t in range(200):
        assert not learner.observe("p/m", "code", rng.gauss(0.9, 0.1), float(t))
    before = learner.posterior("p/m", TaskType.CODE, 0.5, 200.0).mean
    rang_at = None
    for k in range(10):
        if learner.observe("p/m", "code", rng.gauss(0.45, 0.1), 200.0 + k):
            rang_at = k
            break
    assert rang_at is not None and rang_at <= 4
    after = learner.posterior("p/m", TaskType.CODE, 0.5, 210.0).mean
    # the post-drop scores and one pseudo-score of the pooled prior (still the old 0.9s: one region)
    assert before > 0.85 and after < 0.7
    assert learner.drifts == {("p/m", "code"): 1}
    assert learner.drift_log[-1].before == pytest.approx(before, abs=0.02)


def test_the_detector_measures_an_excursion_against_the_arm_as_it_was_when_it_began() -> None:
    # A moving reference would follow the drop: the second score would count against 0.7, not 0.9.
    detector = DropDetector()
    config = DriftConfig(slack_sd=1.0, threshold_sd=4.0)
    assert not detector.update(0.9, 0.1, 0.6, config)  # (0.9 - 0.6) / 0.1 - 1 = 2 sd of evidence
    # 2.5 sd more against 0.9 / 0.1 rings (4.5 > 4); against the posterior now it would be -0.5
    assert detector.update(0.7, 0.3, 0.55, config)


def test_a_steady_noisy_arm_does_not_ring_the_alarm() -> None:
    rng = random.Random(11)
    learner = _learner()
    rang = sum(learner.observe("p/m", "chat", rng.gauss(0.7, 0.15), float(t)) for t in range(3000))
    assert rang == 0


def test_the_detector_can_be_turned_off() -> None:
    learner = QualityLearner(LearnerConfig(drift=DriftConfig(enabled=False)))
    for t in range(50):
        learner.observe("p/m", "chat", 0.9, float(t))
    assert not any(learner.observe("p/m", "chat", 0.0, 50.0 + t) for t in range(20))


def test_feedback_is_filed_per_region_and_scores_are_clipped() -> None:
    learner = QualityLearner(LearnerConfig(backoff=False))
    learner.observe("p/m", "code", 7.0, 0.0)
    assert learner.observed("p/m", TaskType.CODE) and not learner.observed("p/m", TaskType.CHAT)
    assert learner.quality("p/m", TaskType.CODE, 0.5) == pytest.approx((0.5 + 1.0) / 2)
    assert learner.quality("p/m", TaskType.CHAT, 0.3) == 0.3


def test_with_backoff_an_arm_starts_from_its_deployments_scores_in_other_regions() -> None:
    learner = QualityLearner()  # backoff on by default
    for t in range(9):
        learner.observe("p/m", "code", 1.0, float(t))
    pooled = (0.3 + 9 * 1.0) / 10  # the configured prior moved by every score of the deployment
    chat = learner.posterior("p/m", TaskType.CHAT, 0.3, 9.0)  # never scored on chat
    assert chat.count == 0.0 and chat.mean == pytest.approx(pooled, abs=1e-3)
    assert chat.sd == pytest.approx(0.2)  # as uncertain as the prior: chat is still probed
    code = learner.posterior("p/m", TaskType.CODE, 0.3, 9.0)
    assert code.mean == pytest.approx((pooled + 9 * 1.0) / 10, abs=1e-3)  # shrunk toward the pool
    assert learner.posterior("q/m", TaskType.CHAT, 0.3, 9.0).mean == 0.3  # another deployment


def test_the_least_recently_scored_arms_go_past_max_arms() -> None:
    learner = QualityLearner(LearnerConfig(max_arms=2, backoff=False))
    for key in ("a/x", "b/x", "a/x", "c/x"):
        learner.observe(key, "chat", 1.0, 0.0)
    assert learner.arm_count() == 2
    assert not learner.observed("b/x", TaskType.CHAT) and learner.observed("a/x", TaskType.CHAT)


def test_the_budget_lets_the_first_request_probe_then_holds_the_traffic_share() -> None:
    budget = ExplorationBudget(BudgetConfig(traffic_share=0.1, spend_share=1.0, half_life_s=1e9))
    assert budget.allows(1, 1, 0.0)
    budget.record(1, 0, True, 0.0)
    assert not budget.allows(1, 1, 0.0)  # 2 probes in 2 requests > 0.1 * 2 + 1
    for _ in range(9):
        budget.record(1, 0, False, 0.0)
    assert budget.allows(1, 1, 0.0)  # 2 <= 0.1 * 11 + 1


def test_an_expensive_probe_waits_until_cheaper_traffic_paid_for_it() -> None:
    budget = ExplorationBudget(BudgetConfig(traffic_share=1.0, spend_share=0.2, half_life_s=1e9))
    assert not budget.allows(30, 1, 0.0)  # 29 extra > 0.2 * 30
    for _ in range(120):
        budget.record(1, 0, False, 0.0)
    assert budget.allows(30, 1, 0.0)  # 29 <= 0.2 * 150


@pytest.mark.parametrize(
    ("means", "costs", "pick"),
    [
        ([0.9, 0.89, 0.7], [30, 10, 1], 1),  # within tolerance of the best: the cheaper one
        ([0.9, 0.85, 0.7], [30, 10, 1], 0),  # 0.05 below the best is not within 0.02
        ([0.8, 0.8, 0.8], [3, 2, 2], 1),  # equal cost: config order
    ],
)
def test_exploit_is_the_cheapest_within_tolerance_of_the_best_mean(
    means: list[float], costs: list[int], pick: int
) -> None:
    choice = choose([0, 1, 2], means, [0.01] * 3, costs, (), tolerance=0.02, floor=None, may_probe=None)
    assert choice.order[0] == pick and not choice.explored and sorted(choice.order) == [0, 1, 2]


def test_an_uncertain_arm_that_draws_high_is_probed_only_when_the_budget_allows() -> None:
    means, sds, costs = [0.8, 0.5], [0.01, 0.3], [10, 1]
    draws = [0.0, 2.0]  # the cheap arm draws 0.5 + 0.6 = 1.1
    allowed = choose(
        [0, 1], means, sds, costs, draws, tolerance=0.02, floor=None, may_probe=lambda p, e: True
    )
    assert allowed.order == [1, 0] and allowed.explored and allowed.exploit == 0
    refused = choose(
        [0, 1], means, sds, costs, draws, tolerance=0.02, floor=None, may_probe=lambda p, e: False
    )
    assert refused.order == [0, 1] and not refused.explored
    low = choose(
        [0, 1], means, sds, costs, [0.0, -1.0], tolerance=0.02, floor=None, may_probe=lambda p, e: True
    )
    assert low.order[0] == 0 and not low.explored


def test_exploit_takes_only_means_that_clear_the_floor() -> None:
    # the cheap arm is within tolerance of nothing that clears 0.8; it is only ever a probe
    choice = choose([0, 1], [0.85, 0.6], [0.01, 0.01], [10, 1], (), tolerance=0.3, floor=0.8, may_probe=None)
    assert choice.order[0] == 0
    nobody = choose([0, 1], [0.7, 0.6], [0.01, 0.01], [10, 1], (), tolerance=0.0, floor=0.8, may_probe=None)
    assert nobody.order[0] == 0  # none clears it: the best mean of those the filter let through


def _full_order(
    group: list[int], means: list[float], costs: list[int], pick: int, floor: float | None
) -> list[int]:
    """The fallback order as documented, by a full sort: the pick, the exploit band cheapest
    first, then the others by mean (ties: cheaper, then index)."""
    clearing = [i for i in group if floor is None or means[i] >= floor] or group
    cut = max(means[i] for i in clearing) - 0.02
    band = [i for i in clearing if means[i] >= cut]
    in_band = sorted((i for i in band if i != pick), key=lambda i: (costs[i], -means[i], i))
    others = sorted((i for i in group if i != pick and i not in band), key=lambda i: (-means[i], costs[i], i))
    return [pick, *in_band, *others]


@given(
    rows=st.lists(
        st.tuples(st.sampled_from([0.5, 0.6, 0.79, 0.8, 0.81, 0.9]), st.integers(1, 4), st.booleans()),
        min_size=1,
        max_size=12,
    ),
    floor=st.sampled_from([None, 0.8]),
    explore=st.booleans(),
    take=st.integers(0, 12),
)
def test_the_lazy_ranking_is_the_full_order_and_its_prefixes(
    rows: list[tuple[float, int, bool]], floor: float | None, explore: bool, take: int
) -> None:
    means = [m for m, _, _ in rows]
    costs = [c for _, c, _ in rows]
    group = [i for i, (_, _, eligible) in enumerate(rows) if eligible] or [0]
    draws = [2.0 * (k % 3 - 1) for k in range(len(group))]
    choice = choose(
        group,
        means,
        [0.1] * len(rows),
        costs,
        draws if explore else (),
        tolerance=0.02,
        floor=floor,
        may_probe=(lambda p, e: True) if explore else None,
    )
    expected = _full_order(group, means, costs, choice.pick, floor)
    assert choice.order == expected and sorted(expected) == sorted(group)
    ranked = choice.ranked()
    assert [next(ranked) for _ in range(min(take, len(group)))] == expected[:take]
