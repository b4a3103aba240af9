"""What the router has learned about quality: one arm per (deployment, request region).

A region is what the request was, as the decision recorded it: the caller's declared task when
given, else the classified one (the `task_type` of the decision event). Feedback is filed under
the region recorded with its request, never re-derived, so a later change of the classifier
cannot move old scores to another region.

Hierarchical shrinkage (`backoff`): every score is also filed in its deployment's pooled arm
(`POOLED`), and a region's arm is shrunk toward that pooled posterior instead of toward the
configured prior. On bench/routing_quality.py (seeds 17-21, uninformative priors, 20% feedback)
it moved the learner from 92.7% quality at a 52% cost cut to 94.4% at 37%, lifted the worst
100-request window vs round-robin from -1.4 to +3.0 points (wrong priors: -7.2 to -0.7), and
kept the dropped model under 10% of its task in every drift run: frontier's pooled mean makes it
the pick where a region is still unknown, so this trades cost cut for quality early on.

`QualityLearner` is a `QualityView` (the planner reads posterior means as qualities, and floors
against the posterior: `filters.quality_floor`), holds the exploration budget the `learned`
strategy draws on, and counts drops its detectors caught (`drifts`). No I/O and no clock: every
call carries its time. Not thread-safe; the router calls it from its event loop.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
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
    # Hierarchical shrinkage: an arm's prior is its deployment's posterior over all regions (itself
    # from the configured prior), not the configured prior alone. A region the deployment was
    # never scored on starts from what it showed elsewhere (its uncertainty still the prior's, so
    # it is still probed); wrong configured priors are corrected everywhere by the first scores.
    backoff: bool = True

    def __post_init__(self) -> None:
        if self.floor_z < 0 or self.max_arms < 1:
            raise ValueError("learning: floor_z must be >= 0 and max_arms >= 1")


# A posterior read is reused until the arm's next score, or until decay since it was computed
# would have moved the scores' weight by more than this fraction (then the mean has moved by at
# most this fraction of its distance from the prior): most requests read 50 cached posteriors
# instead of computing 50 (an exp, a sqrt and an object each).
STALE_FRACTION = 0.001
# A row re-reads only the keys changed since it was last read when at most this many distinct keys
# were, in at most `_LOGGED_PER_KEY` times as many log entries (else in full: a set of a long log
# slice costs more than it saves); the log keeps `_LOG_SIZE` changes (then drops its older half).
_PATCH_MAX = 16
_LOGGED_PER_KEY = 8
_LOG_SIZE = 8_192


class _Arm:
    __slots__ = ("cached", "cached_at", "cached_prior", "detector", "key", "stats", "sums", "sums_at")

    def __init__(self, key: str, time_s: float) -> None:
        self.key = key  # the deployment: what the change log names when this arm's reads change
        self.stats = ArmStats(time_s)
        self.detector = DropDetector()
        self.cached: Posterior | None = None  # the posterior as of `cached_at` for `cached_prior`
        # A pooled arm's decayed (weight, sum) as of `sums_at`: its mean for any prior is then two
        # flops. Each task reads it with that task's configured prior, so a cached posterior for
        # one prior would miss on every change of region (measured: +60 us a decision at 50).
        self.sums: tuple[float, float] | None = None
        self.sums_at = 0.0
        self.cached_at = 0.0
        self.cached_prior = 0.0


# The region of each deployment's pooled arm (every score is filed there too): a region name is a
# task value, never this.
POOLED = "*"


class _Row:
    """The posteriors one candidate list (a compiled policy's table) read last for one region:
    returned as they are while no score was filed and decay has not made any of them stale, and
    patched where only a few of its keys changed since (`QualityLearner._patch`)."""

    __slots__ = (
        "arms",
        "arms_version",
        "at_high",
        "at_low",
        "index_of",
        "logged",
        "newest",
        "oldest",
        "pooled",
        "pooled_high",
        "pooled_low",
        "posteriors",
        "version",
    )

    def __init__(self, keys: Sequence[str]) -> None:
        self.arms: list[_Arm | None] = []
        self.pooled: list[_Arm | None] = []  # each key's pooled arm (backoff), like `arms`
        self.arms_version = -1
        self.posteriors: list[Posterior] = []
        self.version = -1
        self.logged = -1  # the change log's length (with its base) when this row was read
        self.oldest = self.newest = 0.0  # range of the times its scored arms' posteriors are for
        self.index_of = {key: i for i, key in enumerate(keys)}
        # Bounds of the times the candidates' arms' posteriors (`at_*`) and their pooled arms'
        # sums (`pooled_*`) are for (no arm: low inf, high -inf): what a patch checks for
        # staleness. Exact after a full read; a patch only widens them with the times it re-read,
        # so they stay bounds (low <= every time <= high) without a pass over the candidates: a
        # min() or max() over 50 floats costs about 1 us, and a patch took six of them. Loose
        # bounds can only send a read in full early, which gives the same posteriors.
        self.at_low = self.pooled_low = math.inf
        self.at_high = self.pooled_high = -math.inf


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
        self._fresh_s = config.posterior.half_life_s * -math.log2(1.0 - STALE_FRACTION)
        self._version = 0  # +1 per score filed: cached rows are then re-read (or patched)
        # The deployments whose reads changed (a score filed, a cached posterior or pooled sums
        # recomputed, by any row), oldest first; `_log_base` changes precede `_log[0]`. A row
        # whose version is behind re-reads only the keys logged since it was read (`_patch`).
        self._log: list[str] = []
        self._log_base = 0
        self._patch_max = _PATCH_MAX  # below 0: never patch (how the tests get the full reads)
        self._arms_version = 0  # +1 per arm created or forgotten: rows then look their arms up again
        # (id(keys), id(priors), region) -> (keys, priors, row); keys and priors are kept so an
        # id cannot be reused while its row exists. Tables are compiled once: few rows.
        self._rows: dict[tuple[int, int, str], tuple[Sequence[str], Sequence[float], _Row]] = {}

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
            before = stats.posterior(self._backed_off(key, prior, time_s), config.posterior, time_s)
            if before.count >= config.drift.min_count:
                drifted = arm.detector.update(before.mean, before.score_sd, score, config.drift)
        stats.add(score, time_s, config.posterior.half_life_s)
        arm.cached = None
        self._version += 1
        self._changed(key)
        if config.backoff:
            pooled = self._arm((key, POOLED), time_s)
            pooled.stats.add(score, time_s, config.posterior.half_life_s)
            pooled.sums = None
        if drifted:
            kept = arm.detector.after_drop()
            stats.replace(float(len(kept)), sum(kept), sum(x * x for x in kept))
            arm.detector.reset()
            after = stats.posterior(self._backed_off(key, prior, time_s), config.posterior, time_s).mean
            self.drifts[(key, region)] = self.drifts.get((key, region), 0) + 1
            self.drift_log = [*self.drift_log[-99:], DriftEvent(key, region, time_s, before.mean, after)]
        return drifted

    def _arm(self, arm_key: tuple[str, str], time_s: float) -> _Arm:
        arms = self._arms
        arm = arms.get(arm_key)
        if arm is None:
            arm = arms[arm_key] = _Arm(arm_key[0], time_s)
            self._arms_version += 1
            if len(arms) > self.config.max_arms:
                arms.popitem(last=False)
        else:
            arms.move_to_end(arm_key)
        return arm

    def _changed(self, key: str) -> None:
        log = self._log
        log.append(key)
        if len(log) > _LOG_SIZE:  # rows behind the dropped half re-read in full
            del log[: _LOG_SIZE // 2]
            self._log_base += _LOG_SIZE // 2

    @property
    def _logged(self) -> int:
        return self._log_base + len(self._log)

    # --- reads -----------------------------------------------------------------------------------

    def posterior(self, key: str, task: TaskType, prior: float, now_s: float) -> Posterior:
        arm = self._arms.get((key, task._value_))
        prior = self._backed_off(key, prior, now_s)
        if arm is None:
            return self._prior(prior)
        return self._read(arm, prior, now_s)

    def _backed_off(self, key: str, prior: float, now_s: float) -> float:
        """The prior of `key`'s arms: its pooled posterior mean with backoff, else `prior`."""
        pooled = self._arms.get((key, POOLED)) if self.config.backoff else None
        return prior if pooled is None else self._pooled_mean(pooled, prior, now_s)

    def _pooled_mean(self, pooled: _Arm, prior: float, now_s: float) -> float:
        sums = pooled.sums
        if sums is None or abs(now_s - pooled.sums_at) > self._fresh_s:
            stats = pooled.stats
            half_life_s = self.config.posterior.half_life_s
            factor = (
                math.exp(-math.log(2.0) * (now_s - stats.time_s) / half_life_s)
                if now_s > stats.time_s
                else 1.0
            )
            sums = pooled.sums = (stats.weight * factor, stats.sum * factor)
            pooled.sums_at = now_s
            self._changed(pooled.key)
        strength = self.config.posterior.prior_strength
        return (strength * prior + sums[1]) / (strength + sums[0])

    def posteriors(
        self, keys: Sequence[str], task: TaskType, priors: Sequence[float], now_s: float
    ) -> list[Posterior]:
        """`posterior` for many candidates of one request at once (what the planner calls).

        The list returned is shared with later calls for the same `keys` and `priors` objects
        (a compiled policy's table): read it, never change it."""
        region, fresh_s = task._value_, self._fresh_s
        row_key = (id(keys), id(priors), region)
        entry = self._rows.get(row_key)
        if entry is None or entry[0] is not keys or entry[1] is not priors:
            if len(self._rows) > 4_096:  # tables are compiled once; this only bounds a leak
                self._rows.clear()
            row = _Row(keys)
            self._rows[row_key] = (keys, priors, row)
        else:
            row = entry[2]
            if row.version == self._version:
                if now_s - row.oldest <= fresh_s and row.newest - now_s <= fresh_s:
                    return row.posteriors
            elif row.arms_version == self._arms_version and self._patch(row, priors, now_s):
                return row.posteriors
        if row.arms_version != self._arms_version:
            get = self._arms.get
            row.arms = [get((key, region)) for key in keys]
            backoff = self.config.backoff
            row.pooled = [get((key, POOLED)) if backoff else None for key in keys]
            row.arms_version = self._arms_version
        entry_of, arms = self._entry, zip(row.arms, row.pooled, priors, strict=True)
        row.posteriors = [entry_of(arm, pooled, prior, now_s) for arm, pooled, prior in arms]
        at = [arm.cached_at for arm in row.arms if arm is not None]
        row.at_low, row.at_high = (min(at), max(at)) if at else (math.inf, -math.inf)
        at = [pooled.sums_at for pooled in row.pooled if pooled is not None]
        row.pooled_low, row.pooled_high = (min(at), max(at)) if at else (math.inf, -math.inf)
        self._stamp(row, now_s)
        return row.posteriors

    def _entry(self, arm: _Arm | None, pooled: _Arm | None, prior: float, now_s: float) -> Posterior:
        """One candidate's posterior in a row: its arm's, shrunk toward its pooled arm (backoff)."""
        if pooled is not None:  # `_pooled_mean`, its cached case inlined (50 calls a full read)
            sums = pooled.sums
            if sums is None or abs(now_s - pooled.sums_at) > self._fresh_s:
                prior = self._pooled_mean(pooled, prior, now_s)
            else:
                strength = self.config.posterior.prior_strength
                prior = (strength * prior + sums[1]) / (strength + sums[0])
        if arm is None:
            return self._prior(prior)
        return self._read(arm, prior, now_s)

    def _patch(self, row: _Row, priors: Sequence[float], now_s: float) -> bool:
        """Bring `row` up to date by re-reading only the keys logged since it was read, if that
        gives what a full read would: few changes, and every other candidate's cached arm and
        pooled sums still fresh at `now_s` (a full read would then return those very posteriors).
        False: read it in full. A score every decision (feedback arriving) then costs a few
        entries, not 50 (bench/learned_decision.py)."""
        since = row.logged - self._log_base
        # Distinct keys count, not log entries: one score logs its key up to once per region
        # whose arm of it is re-read (its pooled prior moved), and once for its pooled sums.
        if since < 0 or len(self._log) - since > _LOGGED_PER_KEY * self._patch_max:
            return False
        changed = set(self._log[since:])
        if len(changed) > self._patch_max:
            return False
        fresh_s = self._fresh_s
        if now_s - row.at_low > fresh_s or row.at_high - now_s > fresh_s:  # never for no arm
            return False
        if now_s - row.pooled_low > fresh_s or row.pooled_high - now_s > fresh_s:
            return False
        index_of, arms, pooled = row.index_of, row.arms, row.pooled
        out = row.posteriors.copy()  # a list returned earlier is never changed under its reader
        for key in changed:
            i = index_of.get(key)
            if i is None:
                continue
            arm, pooled_arm = arms[i], pooled[i]
            out[i] = self._entry(arm, pooled_arm, priors[i], now_s)
            if arm is not None:
                at = arm.cached_at
                if at < row.at_low:
                    row.at_low = at
                if at > row.at_high:
                    row.at_high = at
            if pooled_arm is not None:
                at = pooled_arm.sums_at
                if at < row.pooled_low:
                    row.pooled_low = at
                if at > row.pooled_high:
                    row.pooled_high = at
        row.posteriors = out
        self._stamp(row, now_s)
        return True

    def _stamp(self, row: _Row, now_s: float) -> None:
        """The row is as of now: its version, and the range of times its posteriors are for."""
        row.oldest, row.newest = min(now_s, row.at_low), max(now_s, row.at_high)
        row.version, row.logged = self._version, self._logged

    def _read(self, arm: _Arm, prior: float, now_s: float) -> Posterior:
        cached = arm.cached
        if cached is not None and arm.cached_prior == prior and abs(now_s - arm.cached_at) <= self._fresh_s:
            return cached
        if cached is not None:
            # Rows may hold the one replaced: a candidate list with another prior for this key, or
            # a read at a time its cache was stale for. Logged, so their patches re-read it as a
            # full read would (else a row read later kept the old posterior, found by
            # test_patched_rows_equal_full_reads_exactly: two lists, two priors, one key).
            self._changed(arm.key)
        cached = arm.cached = arm.stats.posterior(prior, self.config.posterior, now_s)
        arm.cached_at, arm.cached_prior = now_s, prior
        return cached

    def _prior(self, prior: float) -> Posterior:
        found = self._prior_cache.get(prior)
        if found is None:
            if len(self._prior_cache) > 1024:  # priors come from config: few distinct values
                self._prior_cache.clear()
            found = self._prior_cache[prior] = prior_posterior(prior, self.config.posterior)
        return found

    def quality(self, key: str, task: TaskType, prior: float) -> float:
        """`QualityView`: the posterior mean as of the newest score seen."""
        return self.posterior(key, task, prior, self._now_s).mean

    def observed(self, key: str, task: TaskType) -> bool:
        """`ObservedQualityView`: whether any score was filed for this arm."""
        return (key, task._value_) in self._arms

    def arm_count(self) -> int:
        return len(self._arms)
