"""The store's cost counters against the costs consumer's rollups, the settled truth (issue 14).

Calendar budgets (hour, day, week or month in `limits.time_zone`): the reconciler reads the
store's settled spend of the current window and the rollup's exact cost of the same window and
entity ("team:search" <-> dimension "team=search", "global" <-> "total=all"), and exports their
difference, `llmrouter_limits_drift_nanos` (store minus rollup). The rollup window is the budget's
own (router_contract/calendar.py computes both): UTC hours and days, UTC calendar weeks and months,
and in another zone the consumers' `<unit>@<zone>` windows, which they keep only for the zones
they are given (`--cost-time-zones`, COST_TIME_ZONES); a budget whose window no rollup keeps is
not reconciled.

Rolling budgets (the last hour, day, week or 30 days): the store counts them in 24 epoch-aligned
buckets of duration / 24 (periods.py), and the rollups keep each limited entity's cost per bucket
of the same bounds (router_contract/windows.py `RollingGrain`). The drift is the store's sum over
the buckets of the rolling window minus the rollup's. The correction is per bucket, so restored
spend ages out of the window when the spend it stands for would have: walking from the newest
bucket to the oldest, each suffix of the window (what the window holds once the older buckets
have aged out) must hold at least the rollup's spend of that suffix, and the shortfall is added
to the bucket where it first appears (`bucket_corrections`). Comparing suffixes rather than single
buckets means a settle the store counted in the next bucket (the router's clock at settle, a few
milliseconds after the event time the rollup uses) is not counted twice.

Budgets of a named entity and global ones are reconciled, and a "*" budget (one per key, team or
customer) for each entity the rollups have spend for in its window: one store read per such
entity and budget each pass.

Normally the drift is small and positive: the store counts a settle at once, the rollup when the
event has been consumed and snapshotted. A negative drift means the store is missing spend the
event log has: a lost store (Redis restarted empty), settles lost while it was unreachable, or
calls admitted uncounted under fail_open. Then the counter (or bucket) is raised to the rollup's
figure (`LimitStore.raise_used`: an atomic max, so replicas reconciling at once restore it once).

The bound on what a restore leaves out: the spend of the calls settled in the store after the
loss and before the rollup counted them is not added twice, and spend the rollup has not counted
yet (one snapshot interval plus event delivery) is not restored until a later pass sees it.
Events later than the rollups' retention (older than the previous window; for rolling buckets,
older than the rolling window at the consumer's newest event) are not in them either. Not
reconciled: rolling minutes, and rollups that are stale or still catching up (their figures read
short).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from prometheus_client import Counter, Gauge

from router_contract.cost_totals import Totals
from router_contract.readers.costs import fleet_buckets, keeps_rolling
from router_contract.snapshot_keys import part
from router_contract.snapshot_records import JsonDict
from router_contract.windows import ROLLING_SECONDS, RollingGrain, grain_name
from router_service.fleet.view import FleetView, Topic
from router_service.limits.governor import Governor
from router_service.limits.model import EVERY_ENTITY, Bound, Check, Estimate, Level, Metric
from router_service.limits.periods import PeriodUnit, Window
from router_service.limits.plan import build_checks, windows_of
from router_service.limits.report import named_bounds
from router_service.limits.store import LimitStore, StoreUnavailableError

log = logging.getLogger(__name__)

DRIFT = Gauge(
    "llmrouter_limits_drift_nanos",
    "A budget's settled spend in the limits store minus the costs rollup's exact cost for the same "
    "window and entity (nano-USD); negative: the store is missing spend and is restored.",
    ["level", "entity", "period"],
)
RESTORED = Counter(
    "llmrouter_limits_restored_nanos",
    "Spend (nano-USD) added to the limits store from the costs rollup by the reconciler.",
    ["level", "entity", "period"],
)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    level: str
    entity: str
    window_start: int
    store_used: int
    rollup_cost: int
    restored: int = 0
    period: str = ""  # the budget's period as errors name it: "month (UTC)", "rolling day"

    @property
    def drift(self) -> int:
        return self.store_used - self.rollup_cost


_DIMENSION_LEVELS = {"api_key": "key", "team": "team", "customer": "customer"}


def rollup_dimension(entity: str) -> str:
    """The costs rollup's dimension of a limited entity (its value escaped as the consumers do)."""
    if entity == "global":
        return "total=all"
    level, _, name = entity.partition(":")
    return f"{'api_key' if level == 'key' else level}={part(name)}"


def rollup_entity(dimension: str) -> str | None:
    """The limited entity of a rollup dimension ("team=search" -> "team:search"), or None: the
    total, per-model shares ("team=search,model=m": an escaped value holds no ","), models,
    providers and tags."""
    name, separator, value = dimension.partition("=")
    level = _DIMENSION_LEVELS.get(name)
    if not separator or level is None or "," in value:
        return None
    return f"{level}:{unquote(value)}"


def granularity(bound: Bound) -> str | None:
    """The rollup granularity a budget's period is ("day", "month", "week@Europe/Berlin"), or None
    when no rollup window is (rolling periods, minutes, limits that are not budgets)."""
    limit = bound.limit
    period = limit.period
    if limit.metric is not Metric.COST or period is None or period.rolling:
        return None
    if period.unit is PeriodUnit.MINUTE:
        return None
    return grain_name(period.unit.value, period.zone)


def rolling_grain(bound: Bound) -> RollingGrain | None:
    """The rollup buckets of a rolling budget ("day": 24 one-hour buckets), or None when it is
    not one (calendar periods, rolling minutes, limits that are not budgets)."""
    limit = bound.limit
    period = limit.period
    if limit.metric is not Metric.COST or period is None or not period.rolling:
        return None
    return RollingGrain(period.unit.value) if period.unit.value in ROLLING_SECONDS else None


def bucket_corrections(
    stored: Mapping[int, int], rolled: Mapping[int, int], oldest: int, newest: int
) -> dict[int, int]:
    """{bucket: spend to add} so that every suffix of the buckets oldest..newest holds at least
    the rollup's spend of that suffix: the least spend added, each part in the newest bucket that
    needs it (it then ages out no later than the spend it stands for)."""
    out: dict[int, int] = {}
    shortfall = 0  # the rollup's suffix sum minus the store's (corrections included)
    for bucket in range(newest, oldest - 1, -1):
        shortfall += rolled.get(bucket, 0) - stored.get(bucket, 0)
        if shortfall > 0:
            out[bucket] = shortfall
            shortfall = 0
    return out


# (granularity, window start) -> {dimension: totals}, or None when the rollup is not usable now
# or keeps no such granularity.
Rollup = Callable[[str, int], Mapping[str, Totals] | None]
# (rolling period, bucket length in ms) -> {dimension: {bucket: cost nano-USD}}, or None when the
# rollup is not usable now or keeps no such buckets.
RollingRollup = Callable[[str, int], Mapping[str, Mapping[int, int]] | None]


def _usable(view: Callable[[], FleetView | None]) -> FleetView | None:
    current = view()
    if current is None or Topic.COSTS in current.stale:
        return None
    fresh = current.freshness.get(Topic.COSTS)
    return None if fresh is not None and fresh.catching_up else current


def fleet_rollup(view: Callable[[], FleetView | None]) -> Rollup:
    """The rollups as a router's fleet view has them (the costs snapshot topic), when fresh."""

    def totals(grain: str, start: int) -> Mapping[str, Totals] | None:
        current = _usable(view)
        if current is None or not keeps(current.costs, grain):
            return None
        return current.cost_totals(grain, start)

    return totals


def fleet_rolling(view: Callable[[], FleetView | None]) -> RollingRollup:
    """The rollups' rolling buckets as a router's fleet view has them, when fresh."""

    def buckets(period: str, bucket_ms: int) -> Mapping[str, Mapping[int, int]] | None:
        current = _usable(view)
        if current is None or not keeps_rolling(current.costs, period, bucket_ms):
            return None
        return fleet_buckets(current.costs, period)

    return buckets


def keeps(latest: Mapping[str, JsonDict | None], grain: str) -> bool:
    """Whether the costs rollups keep windows of `grain` (every cost record lists each
    granularity its consumer keeps, empty or not: the first one found answers)."""
    for value in latest.values():
        if value is not None and "windows" in value:
            return grain in value["windows"]
    return False


class Reconciler:
    def __init__(
        self,
        governor: Governor,
        rollup: Rollup,
        *,
        rolling: RollingRollup | None = None,
        restore: bool = True,
    ) -> None:
        self._governor = governor
        self._sources = (rollup, rolling)
        self._rollup = rollup
        self._rolling = rolling
        self._restore = restore

    async def run_once(self, now: float) -> list[Reconciliation]:
        """Calendar budgets, then rolling ones; a store that cannot be reached ends the pass."""
        # Each rollup merges the whole costs snapshot on the event loop: once per window a pass,
        # not once per bound (one per entity of a "*" budget made a pass quadratic in entities).
        rollup, rolling = self._sources
        self._rollup = functools.cache(rollup)
        self._rolling = None if rolling is None else functools.cache(rolling)
        out: list[tuple[Bound, Reconciliation]] = []
        try:
            await self._calendar(now, out)
            await self._rolling_budgets(now, out)
        except StoreUnavailableError as exc:
            log.warning("limits: reconciliation skipped, store unreachable: %s", exc)
        _export_every_entity(out)
        return [result for _, result in out]

    def _checks(self, bounds: list[Bound], now: float) -> list[tuple[Bound, Check, Window]]:
        windows = windows_of(bounds, now)
        checks = build_checks(bounds, windows, Estimate(0, 0), self._governor.plan.reservation_ttl_s)
        out = []
        for bound, check, window in zip(bounds, checks, windows, strict=True):
            assert window is not None  # budgets have periods
            out.append((bound, check, window))
        return out

    def _spenders(self, now: float, rolling: bool) -> set[str]:
        """The entities the rollups have spend for, of every level with a "*" budget (each key,
        team or customer separately): their budgets are reconciled too."""
        out: set[str] = set()
        for limit in self._governor.plan.limits:
            if limit.entity != EVERY_ENTITY or limit.level is Level.GLOBAL or limit.period is None:
                continue
            rolled: Mapping[str, object] | None = None
            grain, buckets = granularity(Bound(limit, "")), rolling_grain(Bound(limit, ""))
            if not rolling and grain is not None:
                rolled = self._rollup(grain, int(limit.period.window(now).start))
            elif rolling and buckets is not None and self._rolling is not None:
                rolled = self._rolling(buckets.period, buckets.bucket_ms)
            prefix = f"{limit.level.value}:"
            out.update(
                e for d in rolled or () if (e := rollup_entity(d)) is not None and e.startswith(prefix)
            )
        return out

    async def _calendar(self, now: float, out: list[tuple[Bound, Reconciliation]]) -> None:
        plan = self._governor.plan
        bounds = [b for b in named_bounds(plan, self._spenders(now, False)) if granularity(b) is not None]
        store = self._governor.store
        for bound, check, window in self._checks(bounds, now):
            grain = granularity(bound)
            assert grain is not None
            start = int(window.start)
            rolled = self._rollup(grain, start)
            if rolled is None:
                continue
            totals = rolled.get(rollup_dimension(bound.entity))
            rollup = 0 if totals is None else totals.cost_nanos_usd
            used, _ = await store.read(check.counter, check.oldest_bucket, now)
            restored = 0
            if self._restore and rollup > used:
                restored = await store.raise_used(check.counter, rollup, check.expire_at, now)
            out.append((bound, _record(bound, start, used, rollup, restored)))

    async def _rolling_budgets(self, now: float, out: list[tuple[Bound, Reconciliation]]) -> None:
        if self._rolling is None:
            return
        plan = self._governor.plan
        bounds = [b for b in named_bounds(plan, self._spenders(now, True)) if rolling_grain(b) is not None]
        for bound, check, window in self._checks(bounds, now):
            grain = rolling_grain(bound)
            assert grain is not None
            rolled = self._rolling(grain.period, grain.bucket_ms)
            if rolled is None:
                continue
            buckets = rolled.get(rollup_dimension(bound.entity), {})
            result = await self._correct_buckets(self._governor.store, bound, check, window, buckets, now)
            out.append((bound, result))

    async def _correct_buckets(
        self,
        store: LimitStore,
        bound: Bound,
        check: Check,
        window: Window,
        rolled: Mapping[int, int],
        now: float,
    ) -> Reconciliation:
        oldest, newest = window.oldest_bucket, int(window.field[1:])
        stored = await store.read_buckets(check.counter, now)
        restored = 0
        if self._restore:
            for bucket, add in bucket_corrections(stored, rolled, oldest, newest).items():
                floor = stored.get(bucket, 0) + add
                restored += await store.raise_used(check.counter, floor, check.expire_at, now, f"u{bucket}")
        in_window = range(oldest, newest + 1)
        used = sum(stored.get(b, 0) for b in in_window)
        rollup = sum(rolled.get(b, 0) for b in in_window)
        return _record(bound, int(window.start), used, rollup, restored)


def _record(bound: Bound, start: int, used: int, rollup: int, restored: int) -> Reconciliation:
    """The result of one budget's reconciliation, exported: a named entity's (or the global one's)
    as its own series and log line; the entities of a "*" budget, which are not bounded by the
    config, only summed per level and period after the pass (`_export_every_entity`)."""
    level, period = bound.limit.level.value, bound.limit.period_text
    result = Reconciliation(level, bound.entity, start, used, rollup, restored, period)
    if _one_of_every_entity(bound):
        return result
    DRIFT.labels(level, bound.entity, period).set(result.drift)
    if restored:
        RESTORED.labels(level, bound.entity, period).inc(restored)
        log.warning("limits: restored %d nano-USD of %s's %s spend", restored, bound.entity, period)
    return result


def _one_of_every_entity(bound: Bound) -> bool:
    return bound.limit.entity == EVERY_ENTITY and bound.limit.level is not Level.GLOBAL


def _export_every_entity(bounds_and_results: list[tuple[Bound, Reconciliation]]) -> None:
    """Per level and period of the "*" budgets: drift summed over its entities ("team:*"), the
    spend restored, and one log line for the pass however many entities were short."""
    drift: dict[tuple[str, str], int] = {}
    restored: dict[tuple[str, str], list[int]] = {}
    for bound, result in bounds_and_results:
        if _one_of_every_entity(bound):
            group = (result.level, result.period)
            drift[group] = drift.get(group, 0) + result.drift
            if result.restored:
                restored.setdefault(group, []).append(result.restored)
    for (level, period), total in drift.items():
        DRIFT.labels(level, f"{level}:{EVERY_ENTITY}", period).set(total)
    for (level, period), amounts in restored.items():
        total = sum(amounts)
        RESTORED.labels(level, f"{level}:{EVERY_ENTITY}", period).inc(total)
        log.warning("limits: restored %d nano-USD of %s spend to %d %ss", total, period, len(amounts), level)
