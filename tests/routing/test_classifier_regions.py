"""Regions finer than the task: task~low for unsure classifications, read and filed through the
real planner with the `learned` strategy (router_service/routing/classifier_regions.py)."""

from __future__ import annotations

import random

import pytest

from router_service.domain import ChatRequest, RoutingHints, TaskType
from router_service.errors import NoEligibleCandidateError
from router_service.routing.classifier import DEFAULT_CLASSIFIER, Classification, assess
from router_service.routing.classifier_regions import (
    LOW_CONFIDENCE,
    RegionClassifier,
    RegionQualityView,
    region_name,
)
from router_service.routing.learning import BudgetConfig, LearnerConfig, PosteriorConfig, QualityLearner
from router_service.routing.planner import RoutingEnv
from router_service.routing.policy import Policy
from router_service.routing.router import Router
from router_service.routing.strategies import StrategyParams
from tests.routing.factories import HEALTHY, catalog, deployment, request


class ByWord:
    """A scored classifier: chat, with confidence 0.3 when the prompt says "unsure", else 0.9."""

    def classify(self, req: ChatRequest) -> TaskType:
        return self.assess(req).task

    def assess(self, req: ChatRequest) -> Classification:
        unsure = "unsure" in req.messages[-1].content
        return Classification(TaskType.CHAT, 0.3 if unsure else 0.9)


def test_region_name_splits_only_below_the_threshold() -> None:
    assert region_name(TaskType.CODE, 0.2) == "code~low"
    assert region_name(TaskType.CODE, LOW_CONFIDENCE) == "code"
    assert region_name(TaskType.CODE, 0.99) == "code"
    assert region_name(TaskType.CODE, None) == "code"  # a classifier without confidence: the task


def test_the_shipped_model_gives_the_region_of_its_confidence() -> None:
    regions = RegionClassifier(DEFAULT_CLASSIFIER)
    for text in ("Write a haiku about autumn rain.", "hm", "Fix this: def f(x) return x+1"):
        found = assess(DEFAULT_CLASSIFIER, request(text, task=None))
        assert regions.region(request(text, task=None)) == region_name(found.task, found.confidence)


def _router_and_view() -> tuple[Router, RegionQualityView, QualityLearner]:
    keys_prices = (("a/cheap", 10_000_000), ("b/dear", 5_000_000_000))
    deployments = (deployment(k, input_nanos=p, output_nanos=4 * p) for k, p in keys_prices)
    policy = Policy("p", strategy="learned", max_attempts=1, params=StrategyParams(quality_tolerance=0.03))
    classifier = RegionClassifier(ByWord())
    router = Router(
        catalog(*deployments), {"p": policy}, "p", rng=random.Random(3), env=RoutingEnv(classifier=classifier)
    )
    no_probes = BudgetConfig(traffic_share=0.0, spend_share=0.0)
    learner = QualityLearner(LearnerConfig(posterior=PosteriorConfig(half_life_s=1e9), exploration=no_probes))
    return router, RegionQualityView(learner, classifier), learner


def _cheap_good_only_when_unsure(learner: QualityLearner) -> None:
    """Scores: cheap is bad on confident chat, as good as dear on unsure chat."""
    for t in range(40):
        learner.observe("a/cheap", "chat", 0.3, float(t))
        learner.observe("b/dear", "chat", 0.9, float(t))
        learner.observe("a/cheap", "chat~low", 0.9, float(t))
        learner.observe("b/dear", "chat~low", 0.9, float(t))


def test_scores_under_the_low_region_move_only_unsure_requests() -> None:
    router, view, learner = _router_and_view()
    _cheap_good_only_when_unsure(learner)
    sure = router.route(request("hello there", task=None), HEALTHY, 50.0, quality=view)
    assert (sure.chosen, view.last_region) == ("b/dear", "chat")
    unsure = router.route(request("unsure what to ask", task=None), HEALTHY, 51.0, quality=view)
    assert (unsure.chosen, view.last_region) == ("a/cheap", "chat~low")


def test_a_declared_task_reads_its_own_region_not_the_last_classified_one() -> None:
    router, view, learner = _router_and_view()
    _cheap_good_only_when_unsure(learner)
    router.route(request("unsure what to ask", task=None), HEALTHY, 50.0, quality=view)
    # Declared chat: the classifier is skipped, so the unsure request's region must not carry over.
    declared = router.route(request("unsure again", task=TaskType.CHAT), HEALTHY, 51.0, quality=view)
    assert (declared.chosen, view.last_region) == ("b/dear", "chat")


def test_a_failed_unsure_request_does_not_lend_its_region_once_the_next_route_begins() -> None:
    router, view, learner = _router_and_view()
    _cheap_good_only_when_unsure(learner)
    denied = RoutingHints(denied_providers=frozenset({"a", "b"}))
    with pytest.raises(NoEligibleCandidateError):  # classified, then no candidate: no learner read
        router.route(request("unsure what to ask", task=None, hints=denied), HEALTHY, 50.0, quality=view)
    view.classifier.begin()
    declared = router.route(request("hello", task=TaskType.CHAT), HEALTHY, 51.0, quality=view)
    assert (declared.chosen, view.last_region) == ("b/dear", "chat")
