"""What feeds the router's learner: each answered request remembered under the deployment that
answered and the task it was routed as, its score filed once, within the feedback window."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from router_service.call import CacheHit, CallContext, Completion
from router_service.domain import (
    ChatRequest,
    ChatResult,
    FinishReason,
    Message,
    Role,
    RouteDecision,
    TaskType,
    Usage,
)
from router_service.quality_learning.feed import LearningFeed
from router_service.routing.learning import DriftConfig, LearnerConfig, QualityLearner
from tests.routing.factories import deployment

CODER = deployment("p/coder", quality={TaskType.CODE: 0.8})
REQUEST = ChatRequest(messages=(Message(Role.USER, "fix it"),))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _answered(feed: LearningFeed, request_id: str, task: TaskType, cache_hit: CacheHit | None = None) -> None:
    decision = RouteDecision("p", "learned", task, (CODER.key,), ())
    result = ChatResult(Message(Role.ASSISTANT, "done"), FinishReason.STOP, Usage(1, 1))
    completion = Completion(result, CODER, decision, (), 10, cache_hit)
    feed.on_completion(CallContext(request_id, deadline=0.0), REQUEST, completion, 0.1)


def _feed(clock: Clock, **kwargs: object) -> LearningFeed:
    # No backoff: the tests read one arm's own scores
    return LearningFeed(QualityLearner(LearnerConfig(backoff=False)), clock, **kwargs)  # type: ignore[arg-type]


def test_a_score_is_filed_under_the_deployment_and_the_task_it_was_routed_as() -> None:
    clock = Clock()
    feed = _feed(clock)
    _answered(feed, "r1", TaskType.CODE)
    clock.now += 5
    assert feed.file("r1", 0.9)
    code = feed.learner.posterior(CODER.key, TaskType.CODE, 0.8, clock.now)
    assert code.count == pytest.approx(1.0) and code.mean == pytest.approx((0.8 + 0.9) / 2)
    assert not feed.learner.observed(CODER.key, TaskType.CHAT)


def test_one_score_per_request_and_none_for_unknown_expired_or_cached_answers() -> None:
    clock = Clock()
    feed = _feed(clock, window_s=60.0)
    _answered(feed, "r1", TaskType.CODE)
    assert feed.file("r1", 0.9) and not feed.file("r1", 0.9)  # a retried Feedback counts once
    assert not feed.file("never-served", 0.5)
    _answered(feed, "cached", TaskType.CODE, CacheHit(age_s=3.0, saved_cost_nanos=10))
    assert not feed.file("cached", 0.1)  # a cached answer says nothing new about the deployment
    _answered(feed, "old", TaskType.CODE)
    clock.now += 61
    assert not feed.file("old", 0.1)  # past the feedback window
    assert (feed.filed, feed.unattributed) == (1, 4)
    assert feed.learner.posterior(CODER.key, TaskType.CODE, 0.8, clock.now).count < 1.0  # only r1


def test_the_oldest_requests_are_forgotten_past_max_entries() -> None:
    feed = _feed(Clock(), max_entries=2)
    for request_id in ("a", "b", "c"):
        _answered(feed, request_id, TaskType.CODE)
    assert not feed.file("a", 0.5) and feed.file("b", 0.5) and feed.file("c", 0.5)


def test_a_drift_alarm_is_reported_with_its_deployment_and_task() -> None:
    clock, alarms = Clock(), []
    labels = {"provider": "p", "model": "coder", "task": "code"}
    before = REGISTRY.get_sample_value("llmrouter_learning_drift_alarms_total", labels)
    learner = QualityLearner(LearnerConfig(drift=DriftConfig(min_count=4.0)))
    feed = LearningFeed(learner, clock, on_drift=lambda key, region: alarms.append((key, region)))
    for n in range(40):
        clock.now += 1
        _answered(feed, f"r{n}", TaskType.CODE)
        feed.file(f"r{n}", 0.9 if n < 20 else 0.3)  # the coder's code quality drops
    assert alarms and set(alarms) == {(CODER.key, "code")}
    counted = REGISTRY.get_sample_value(
        "llmrouter_learning_drift_alarms_total", {"provider": "p", "model": "coder", "task": "code"}
    )
    assert counted is not None and counted - (before or 0.0) == len(alarms)
