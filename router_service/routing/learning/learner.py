"""What the router has learned about quality: one arm per (deployment, request region).

A region is what the request was, as the decision recorded it: the caller's declared task when
given, else the classified one (the `task_type` of the decision event). Feedback is filed under
the region recorded with its request, never re-derived, so a later change of the classifier
cannot move old scores to another region.

`QualityLearner` is a `QualityView` (the planner reads posterior means as qualities, and floors
against the posterior: `filters.quality_floor`), holds the exploration budget the `learned`
strategy draws on, and counts drops its detectors caught (`drifts`). No I/O and no clock: every
call carries its time. Not thread-safe; the router calls it from its event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from router_service.domain import TaskType
from router_service.routing.learning.budget import BudgetConfig, ExplorationBudget
from router_service.routing.learning.drift import DriftConfig, DropDetector
from router_service.routing.learning.posterior import ArmStats, Posterior, PosteriorConfig, prior_posterior


@dataclass(frozen=True, slots=True)
class LearnerConfig:
    posterior: PosteriorConfig = field(default_factory=PosteriorConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    exploration: BudgetConfig = field(default_factory=BudgetConfig)
    # A quality floor excludes a candidate only when even its optimistic estimate (mean + floor_z
    # sd) is below it: an unknown or badly-priored candidate is probed, not shut out forever, and
    # one excluded on evidence is probed again once that evidence decays.
    floor_z: float = 2.0
    max_arms: int = 100_000  # least recently scored arms are forgotten past this

    def __post_init__(self) -> None:
        if self.floor_z < 0 or self.max_arms < 1:
            raise ValueError("learning: floor_z must be >= 0 and max_arms >= 1")


class _Arm:
    __slots__ = ("detector", "stats")

    def __init__(self, time_s: float) -> None:
        self.stats = ArmStats(time_s)
        self.detector = DropDetector()


@dataclass(frozen=True, slots=True)
class DriftEvent:
    key: str
    region: str
    time_s: float
    before: float  # posterior mean just before the alarm
    after: float  # posterior mean once only the post-drop scores are kept


class QualityLearner:
    def __init__(self, config: LearnerConfig = LearnerConfig()) -> None:
        self.config = config
        self.budget = ExplorationBudget(config.exploration)
        self._arms: OrderedDict[tuple[str, str], _Arm] = OrderedDict()
        self._now_s = 0.0
        self.drifts: dict[tuple[str, str], int] = {}  # alarms per (deployment, region)
        self.drift_log: list[DriftEvent] = []  # the last few alarms, newest last
        self._prior_cache: dict[float, Posterior] = {}

    @property
    def floor_z(self) -> float:
        return self.config.floor_z

    # --- feedback --------------------------------------------------------------------------------

    def observe(self, key: str, region: str, score: float, time_s: float, prior: float = 0.5) -> bool:
        """File one score of deployment `key` on a request of `region`; True if it rang a drift
        alarm (the arm then keeps only its post-drop scores). `prior` is the configured prior the
        detector's reference includes. Scores outside [0, 1] are clipped."""
        score = min(max(score, 0.0), 1.0)
        self._now_s = max(self._now_s, time_s)
        config = self.config
        arm = self._arm((key, region), time_s)
        stats = arm.stats
        drifted = False
        if config.drift.enabled:
            before = stats.posterior(prior, config.posterior, time_s)
            if before.count >= config.drift.min_count:
                drifted = arm.detector.update(before.mean, before.score_sd, score, config.drift)
        stats.add(score, time_s, config.posterior.half_life_s)
        if drifted:
            kept = arm.detector.after_drop()
            stats.replace(float(len(kept)), sum(kept), sum(x * x for x in kept))
            arm.detector.reset()
            after = stats.posterior(prior, config.posterior, time_s).mean
            self.drifts[(key, region)] = self.drifts.get((key, region), 0) + 1
            self.drift_log = [*self.drift_log[-99:], DriftEvent(key, region, time_s, before.mean, after)]
        return drifted

    def _arm(self, arm_key: tuple[str, str], time_s: float) -> _Arm:
        arms = self._arms
        arm = arms.get(arm_key)
        if arm is None:
            arm = arms[arm_key] = _Arm(time_s)
            if len(arms) > self.config.max_arms:
                arms.popitem(last=False)
        else:
            arms.move_to_end(arm_key)
        return arm

    # --- reads -----------------------------------------------------------------------------------

    def posterior(self, key: str, task: TaskType, prior: float, now_s: float) -> Posterior:
        arm = self._arms.get((key, task._value_))
        if arm is None:
            found = self._prior_cache.get(prior)
            if found is None:
                if len(self._prior_cache) > 1024:
                    self._prior_cache.clear()
                found = self._prior_cache[prior] = prior_posterior(prior, self.config.posterior)
            return found
        return arm.stats.posterior(prior, self.config.posterior, now_s)

    def quality(self, key: str, task: TaskType, prior: float) -> float:
        """`QualityView`: the posterior mean as of the newest score seen."""
        return self.posterior(key, task, prior, self._now_s).mean

    def observed(self, key: str, task: TaskType) -> bool:
        """`ObservedQualityView`: whether any score was filed for this arm."""
        return (key, task._value_) in self._arms

    def arm_count(self) -> int:
        return len(self._arms)
