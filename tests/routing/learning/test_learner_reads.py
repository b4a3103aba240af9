"""The learner's cheap reads: cached posteriors equal what the scores say, draws from a table.

The planner reads every candidate's posterior per request through `QualityLearner.posteriors`,
which reuses what it read last until a score is filed or decay makes it stale. These tests pin
that the reuse never shows a posterior other than the one the arm's scores give (within the
documented staleness), and that the table-based normal draws behave like draws.
"""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.domain import TaskType
from router_service.routing.learning import (
    ArmStats,
    BudgetConfig,
    DriftConfig,
    ExplorationBudget,
    LearnerConfig,
    PosteriorConfig,
    QualityLearner,
)
from router_service.routing.learning.choice import normal_draws
from router_service.routing.learning.learner import POOLED, STALE_FRACTION

HALF_LIFE = 100.0
KEYS = ("a/x", "b/y", "c/z")
PRIORS = (0.5, 0.7, 0.3)


def _learner() -> QualityLearner:
    # No drift detector: an alarm would cut an arm's sums, which `truth` below does not model.
    config = LearnerConfig(posterior=PosteriorConfig(half_life_s=HALF_LIFE), drift=DriftConfig(enabled=False))
    return QualityLearner(config)


# A step: file a score (key index, region, score) or read all posteriors, after `advance` seconds.
steps = st.lists(
    st.tuples(
        st.sampled_from(["score", "read"]),
        st.integers(0, len(KEYS) - 1),
        st.sampled_from([TaskType.CHAT, TaskType.CODE]),
        st.floats(0.0, 1.0),
        st.sampled_from([0.0, 0.01, 1.0, 30.0, 500.0]),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps=steps)
def test_cached_reads_are_the_posterior_the_scores_give(
    steps: list[tuple[str, int, TaskType, float, float]],
) -> None:
    learner, now = _learner(), 0.0
    truth: dict[tuple[str, str], ArmStats] = {}  # the same scores, filed without any cache
    config = learner.config.posterior
    # a tolerance covering the documented staleness: weights off by at most STALE_FRACTION, in
    # the pooled arm (the backoff prior) and then in the region's arm
    tolerance = 4 * STALE_FRACTION + 1e-12
    for action, index, task, score, advance in steps:
        now += advance
        key = KEYS[index]
        if action == "score":
            learner.observe(key, task.value, score, now, PRIORS[index])
            for region in (task.value, POOLED):
                truth.setdefault((key, region), ArmStats(now)).add(score, now, HALF_LIFE)
            continue
        read = learner.posteriors(KEYS, task, PRIORS, now)
        for k, configured, got in zip(KEYS, PRIORS, read, strict=True):
            pooled = truth.get((k, POOLED))  # the backoff: the pooled mean is the arm's prior
            prior = pooled.posterior(configured, config, now).mean if pooled else configured
            stats = truth.get((k, task.value))
            want = stats.posterior(prior, config, now) if stats is not None else None
            if want is None:
                assert got.count == 0.0 and got.mean == pytest.approx(prior, abs=tolerance)
                continue
            assert got.mean == pytest.approx(want.mean, abs=tolerance)
            assert got.count == pytest.approx(want.count, rel=tolerance)
            assert got.sd == pytest.approx(want.sd, rel=tolerance)
            assert learner.posterior(k, task, configured, now) == got  # one read path, one answer


def test_a_score_shows_in_the_very_next_read_and_decay_once_it_matters() -> None:
    learner = _learner()
    learner.observe("a/x", "chat", 0.9, 0.0)
    first = learner.posteriors(KEYS, TaskType.CHAT, PRIORS, 0.0)
    assert learner.posteriors(KEYS, TaskType.CHAT, PRIORS, 0.0) is first  # nothing changed: reused
    learner.observe("a/x", "chat", 0.1, 0.0)
    second = learner.posteriors(KEYS, TaskType.CHAT, PRIORS, 0.0)
    assert second[0].count == pytest.approx(2.0) and second[0].mean < first[0].mean
    learner.observe("b/y", "chat", 1.0, 0.0)  # a new arm in a row read before
    assert learner.posteriors(KEYS, TaskType.CHAT, PRIORS, 0.0)[1].count == pytest.approx(1.0)
    later = learner.posteriors(KEYS, TaskType.CHAT, PRIORS, HALF_LIFE)  # one half-life on
    assert later[0].count == pytest.approx(1.0)
    # a different prior for the same key (a reloaded config) is read afresh, not served cached
    assert learner.posteriors(KEYS, TaskType.CHAT, (0.0, 0.7, 0.3), HALF_LIFE)[0].mean < later[0].mean


def test_normal_draws_are_fixed_by_the_value_and_look_standard_normal() -> None:
    assert normal_draws(0.25, 50) == normal_draws(0.25, 50)  # sticky: same value, same draws
    assert normal_draws(0.25, 50) != normal_draws(0.26, 50)
    assert len(normal_draws(0.999999, 50)) == 50 and len(normal_draws(0.5, 1_000)) == 1_000
    # one draw per request, for many requests: what one candidate sees over time
    seen = [normal_draws(k / 10_007, 3)[1] for k in range(10_007)]
    assert abs(statistics.fmean(seen)) < 0.05 and statistics.pstdev(seen) == pytest.approx(1.0, abs=0.05)
    within_one = sum(abs(x) < 1.0 for x in seen) / len(seen)
    assert within_one == pytest.approx(math.erf(1 / math.sqrt(2)), abs=0.02)  # 68%


def test_the_budget_is_closed_exactly_when_no_probe_could_be_allowed() -> None:
    budget = ExplorationBudget(BudgetConfig(traffic_share=0.1, spend_share=1.0, half_life_s=1e9))
    for n in range(200):
        assert budget.open(float(n)) == budget.allows(1, 1, float(n))
        budget.record(1, 0, budget.allows(1, 1, float(n)), float(n))
    assert 0 < budget.explored <= 0.1 * budget.requests + 1


# Two candidate lists sharing keys, one with another prior for a shared key (so rows re-read each
# other's arms), read at times that stay within or leave the staleness window.
TABLES = (("a/x", "b/y", "c/z"), ("c/z", "d/w", "a/x"))
TABLE_PRIORS = ((0.5, 0.7, 0.3), (0.3, 0.6, 0.9))
patch_steps = st.lists(
    st.tuples(
        st.sampled_from(["score", "read"]),
        st.integers(0, 3),  # a key ("score") or a table ("read", modulo 2)
        st.sampled_from([TaskType.CHAT, TaskType.CODE]),
        st.floats(0.0, 1.0),
        st.sampled_from([0.0, 0.0, 0.01, 1.0, 500.0]),
    ),
    max_size=60,
)
ALL_KEYS = ("a/x", "b/y", "c/z", "d/w")


@settings(max_examples=200, deadline=None)
@given(steps=patch_steps, drift=st.booleans(), backoff=st.booleans())
def test_patched_rows_equal_full_reads_exactly(
    steps: list[tuple[str, int, TaskType, float, float]], drift: bool, backoff: bool
) -> None:
    """A row re-read only where its keys changed gives exactly (==, float for float) what the
    same learner reading every changed row in full gives: the decisions cannot differ."""
    config = LearnerConfig(
        posterior=PosteriorConfig(half_life_s=HALF_LIFE),
        drift=DriftConfig(enabled=drift, min_count=2),
        backoff=backoff,
    )
    patched, full = QualityLearner(config), QualityLearner(config)
    full._patch_max = -1  # never patch: a row behind is read in full, as before patching existed
    now = 0.0
    for action, index, task, score, advance in steps:
        now += advance
        if action == "score":
            key = ALL_KEYS[index]
            assert patched.observe(key, task.value, score, now) == full.observe(key, task.value, score, now)
            continue
        keys, priors = TABLES[index % 2], TABLE_PRIORS[index % 2]
        assert patched.posteriors(keys, task, priors, now) == full.posteriors(keys, task, priors, now)


def test_a_score_patches_its_key_only_and_leaves_earlier_lists_alone() -> None:
    learner = _learner()
    for key in KEYS:
        learner.observe(key, "chat", 0.6, 0.0)
    first = learner.posteriors(KEYS, TaskType.CHAT, PRIORS, 0.0)
    kept = list(first)
    learner.observe("b/y", "chat", 1.0, 0.0)
    second = learner.posteriors(KEYS, TaskType.CHAT, PRIORS, 0.0)
    assert first == kept  # the list a reader holds did not change under it
    assert second[0] is first[0] and second[2] is first[2]  # unchanged keys: the same posteriors
    assert second[1].count == pytest.approx(2.0) and second[1].mean > first[1].mean


def test_a_posterior_another_list_recomputed_is_re_read_by_the_next_patch() -> None:
    """Two candidate lists give one key different priors: reading the second replaces the key's
    cached posterior, and the first list's next read (a patch: another key was scored) must give
    what a full read gives, not the posterior it held (hypothesis found this case)."""
    config = LearnerConfig(posterior=PosteriorConfig(half_life_s=HALF_LIFE), backoff=False)
    patched, full = QualityLearner(config), QualityLearner(config)
    full._patch_max = -1
    for learner in (patched, full):
        for _ in range(3):
            learner.observe("a/x", "chat", 0.0, 0.0)
        learner.observe("c/z", "code", 0.0, 0.0)
        learner.posteriors(TABLES[0], TaskType.CHAT, TABLE_PRIORS[0], 0.0)
        learner.observe("c/z", "code", 0.0, 0.0)
        learner.posteriors(TABLES[1], TaskType.CHAT, TABLE_PRIORS[1], 0.0)  # a/x with prior 0.9
    later = patched.posteriors(TABLES[0], TaskType.CHAT, TABLE_PRIORS[0], 0.01)
    assert later == full.posteriors(TABLES[0], TaskType.CHAT, TABLE_PRIORS[0], 0.01)
    assert later[0].count < 3.0  # decayed to the time of the read, not the one held since 0.0
