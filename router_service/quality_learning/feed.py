"""What feeds the router's quality learner: the feedback this router receives, filed per request.

Why local feedback rather than the fleet quality snapshot: the learner keeps, per (deployment,
region), decayed score sums and a drop detector that must see scores one by one, in order. The
quality snapshot holds per-(model, task) means and counts over a window; turning it back into
scores would invent them. So each router learns from the `Feedback` calls it receives for the
requests it served, at once (no consumer or topic lag). With several replicas each learns from
the feedback that reaches it (feedback.require_known_request keeps that the feedback for its own
requests); exploration is a share of each replica's traffic, so of the fleet's.

Filed under what the request was when it was routed: the deployment that answered and the
decision's task (the caller's declared task when given, else the classified one), remembered at
completion. A later change of the classifier cannot move the score to another region. One score
per request: a retried Feedback call (or a second scorer) does not count twice. Answers served
from the response cache are not filed (their score says nothing new about the deployment).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from router_service.call import CallContext, Completion, StreamFinish
from router_service.domain import AttemptRecord, ChatRequest, RouteDecision
from router_service.identity.model import Identity
from router_service.routing.learning import QualityLearner
from router_service.telemetry.metrics import LEARNING_DRIFT_ALARMS

FeedbackSink = Callable[[str, float, dict[str, str], Identity], None]
DriftListener = Callable[[str, str], None]  # (deployment key, region) whose alarm rang


@dataclass(frozen=True, slots=True)
class _Served:
    key: str  # the deployment that answered
    region: str  # the decision's task, as routed
    prior: float  # the deployment's configured prior for it (the drift reference includes it)
    expires: float


class LearningFeed:
    """A `RequestObserver` (remembers each answered request) and the feedback path's filer."""

    def __init__(
        self,
        learner: QualityLearner,
        clock: Callable[[], float],
        *,
        window_s: float = 86_400.0,
        max_entries: int = 200_000,
        on_drift: DriftListener | None = None,
    ) -> None:
        """`clock`: the engine's monotonic clock, the time base routing reads the learner with."""
        self.learner = learner
        self._clock = clock
        self._window_s = window_s
        self._max_entries = max_entries
        self._on_drift = on_drift
        self._served: OrderedDict[str, _Served] = OrderedDict()  # oldest first
        self.filed = 0
        self.unattributed = 0  # scores for requests not (or no longer) remembered here

    # --- RequestObserver -----------------------------------------------------------------------

    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None:
        pass

    def on_attempt(self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str) -> None:
        pass

    def on_completion(
        self, ctx: CallContext, request: ChatRequest, outcome: Completion | StreamFinish, latency_s: float
    ) -> None:
        if outcome.cache_hit is not None:
            return
        task = outcome.decision.task_type
        now = self._clock()
        served = self._served
        self._expire(now)
        if ctx.request_id in served:
            return
        deployment = outcome.deployment
        served[ctx.request_id] = _Served(
            deployment.key, task.value, deployment.quality_for(task), now + self._window_s
        )
        if len(served) > self._max_entries:
            served.popitem(last=False)

    def on_error(self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float) -> None:
        pass

    # --- feedback ------------------------------------------------------------------------------

    def file(self, request_id: str, score: float) -> bool:
        """File `score` (in [0, 1]) for the request; False when it is not remembered here (not
        served here, expired, failed, already scored)."""
        now = self._clock()
        self._expire(now)
        served = self._served.pop(request_id, None)
        if served is None:
            self.unattributed += 1
            return False
        self.filed += 1
        if self.learner.observe(served.key, served.region, score, now, served.prior):
            provider, _, model = served.key.partition("/")
            LEARNING_DRIFT_ALARMS.labels(provider, model, served.region).inc()
            if self._on_drift is not None:
                self._on_drift(served.key, served.region)
        return True

    def feedback_sink(self, inner: FeedbackSink | None) -> FeedbackSink:
        """The servicer's feedback sink: `inner` (the event publisher) and then the learner."""

        def sink(request_id: str, score: float, tags: dict[str, str], scorer: Identity) -> None:
            if inner is not None:
                inner(request_id, score, tags, scorer)
            self.file(request_id, score)

        return sink

    def _expire(self, now: float) -> None:
        served = self._served
        while served:
            oldest = next(iter(served.values()))
            if oldest.expires > now:
                return
            served.popitem(last=False)
