"""Request regions finer than the classified task: the task plus the classifier's confidence.

Why: the learner keeps one arm per (deployment, region), and with the region equal to the
classified task, the few prompts the classifier gets wrong are averaged into the region they
land in. A region that receives some real reasoning prompts (the classifier's misses, measured on
the routing-quality bench: 10% of the "chat" region) reads every cheap model as worse than the
frontier there, so the whole region goes to the frontier. Misses are much more frequent among
low-confidence answers (held-out set: 92% accurate at confidence >= 0.5, 66% below), so filing
those under a region of their own ("chat~low") keeps the confident regions nearly pure, and
only the uncertain prompts pay for the uncertainty.

`RegionClassifier` wraps any classifier (the seam stays: a heavier classifier that gives a
confidence through `assess` gets the split, one that gives none gets the plain task) and holds the
region of the request it just classified; `RegionQualityView` reads a `QualityLearner` under that
region and records it (`last_region`) for the caller that files the request's score. The handoff
is within one synchronous `decide` call (classify, then the one bulk `posteriors` read of the
`learned` strategy, which takes the pending region), so nothing is passed through the planner. A
request whose task the caller declares skips the classifier; nothing is pending then, and the
view reads the declared task's own region. Why a bench-side prototype and not yet the service's
path: the decision event records the task only, so the service's feedback join
(`quality_learning.feed`) cannot file a score under the finer region yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from router_service.domain import ChatRequest, TaskType
from router_service.routing.classifier import TaskClassifier, assess
from router_service.routing.learning import Posterior, QualityLearner

# Chosen before looking at any routing result: below even odds for its top class, the classifier
# is guessing between classes; not tuned on the bench.
LOW_CONFIDENCE = 0.5
LOW_SUFFIX = "~low"


class _Region:
    """What `QualityLearner` reads of a task (`._value_`), for a region name that is not a task."""

    __slots__ = ("_value_",)

    def __init__(self, name: str) -> None:
        self._value_ = name


_REGIONS: dict[str, _Region] = {}


def region_name(task: TaskType, confidence: float | None, threshold: float = LOW_CONFIDENCE) -> str:
    """The region a classified request is filed under: its task, or task~low when unsure."""
    if confidence is not None and confidence < threshold:
        return task.value + LOW_SUFFIX
    return task.value


class RegionClassifier:
    """A `TaskClassifier` that holds the region of the request it just classified."""

    __slots__ = ("_inner", "_pending", "_threshold")

    def __init__(self, inner: TaskClassifier, threshold: float = LOW_CONFIDENCE) -> None:
        self._inner = inner
        self._threshold = threshold
        self._pending: tuple[TaskType, str] | None = None

    def begin(self) -> None:
        """Call before routing each request: a request that was classified but never read the
        learner (it failed first: no eligible candidate) must not lend its region to the next,
        which may declare its task and so not be classified at all."""
        self._pending = None

    def classify(self, request: ChatRequest) -> TaskType:
        found = assess(self._inner, request)
        self._pending = (found.task, region_name(found.task, found.confidence, self._threshold))
        return found.task

    def region(self, request: ChatRequest) -> str:
        """The region of `request`, for a caller that is not routing it."""
        found = assess(self._inner, request)
        return region_name(found.task, found.confidence, self._threshold)

    def peek(self, task: TaskType) -> str:
        """The region of the request being routed as `task`: the pending one if it is that task's."""
        pending = self._pending
        return pending[1] if pending is not None and pending[0] is task else task.value

    def take(self, task: TaskType) -> str:
        """`peek`, and nothing pending after it: the next request may be one that is not classified."""
        region = self.peek(task)
        self._pending = None
        return region


def _region(name: str) -> Any:
    region = _REGIONS.get(name)
    if region is None:
        region = _REGIONS[name] = _Region(name)
    return region


class RegionQualityView:
    """A `PosteriorQualityView` over a `QualityLearner`, read under the classifier's region."""

    def __init__(self, learner: QualityLearner, classifier: RegionClassifier) -> None:
        self.learner = learner
        self.classifier = classifier
        self.budget = learner.budget
        self.last_region: str | None = None  # the region the last `posteriors` read used

    @property
    def floor_z(self) -> float:
        return self.learner.floor_z

    def posteriors(
        self, keys: Sequence[str], task: TaskType, priors: Sequence[float], now_s: float
    ) -> list[Posterior]:
        name = self.last_region = self.classifier.take(task)
        return self.learner.posteriors(keys, _region(name), priors, now_s)

    def posterior(self, key: str, task: TaskType, prior: float, now_s: float) -> Posterior:
        return self.learner.posterior(key, _region(self.classifier.peek(task)), prior, now_s)

    def quality(self, key: str, task: TaskType, prior: float) -> float:
        return self.learner.quality(key, _region(self.classifier.peek(task)), prior)

    def observed(self, key: str, task: TaskType) -> bool:
        return self.learner.observed(key, _region(self.classifier.peek(task)))
