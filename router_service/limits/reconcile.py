"""The store's cost counters against the costs consumer's rollups, the settled truth (issue 14).

For every calendar budget (hour, day, week or month in `limits.time_zone`), the reconciler reads
the store's settled spend of the current window and the rollup's exact cost of the same window
and entity ("team:search" <-> dimension "team=search", "global" <-> "total=all"), and exports
their difference, `llmrouter_limits_drift_nanos` (store minus rollup). The rollup window is the
budget's own (router_contract/calendar.py computes both): UTC hours and days, UTC calendar weeks
and months, and in another zone the consumers' `<unit>@<zone>` windows, which they keep only for
the zones of COST_TIME_ZONES; a budget whose window no rollup keeps is not reconciled.

Normally the drift is small and positive: the store counts a settle at once, the rollup when the
event has been consumed and snapshotted. A negative drift means the store is missing spend the
event log has: a lost store (Redis restarted empty), settles lost while it was unreachable, or
calls admitted uncounted under fail_open. Then the counter is raised to the rollup's figure
(`LimitStore.raise_used`: an atomic max, so replicas reconciling at once restore it once).

The bound on what a restore leaves out: the spend of the calls settled in the store after the
loss and before the rollup counted them is not added twice, and spend the rollup has not counted
yet (one snapshot interval plus event delivery) is not restored until a later pass sees it. Not
reconciled: rolling budgets (no rollup window is "the last 30 days"): a lost store forgets their
spend before the loss, and `llmrouter_limits_drift_nanos` has no series for them. Events later
than the rollups' retention (older than the previous window) are not in them either.
Rollups that are stale or still catching up are not used (their figures read short).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from router_contract.cost_totals import Totals
from router_contract.snapshot_records import JsonDict
from router_contract.windows import grain_name
from router_service.fleet.view import FleetView, Topic
from router_service.limits.governor import Governor
from router_service.limits.model import Bound, Estimate, Metric
from router_service.limits.periods import PeriodUnit
from router_service.limits.plan import build_checks, windows_of
from router_service.limits.report import named_bounds
from router_service.limits.store import StoreUnavailableError

log = logging.getLogger(__name__)

DRIFT = Gauge(
    "llmrouter_limits_drift_nanos",
    "A budget's settled spend in the limits store minus the costs rollup's exact cost for the same "
    "window and entity (nano-USD); negative: the store is missing spend and is restored.",
    ["level", "entity"],
)
RESTORED = Counter(
    "llmrouter_limits_restored_nanos",
    "Spend (nano-USD) added to the limits store from the costs rollup by the reconciler.",
    ["level", "entity"],
)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    level: str
    entity: str
    window_start: int
    store_used: int
    rollup_cost: int
    restored: int = 0

    @property
    def drift(self) -> int:
        return self.store_used - self.rollup_cost


def rollup_dimension(entity: str) -> str:
    """The costs rollup's dimension of a limited entity."""
    if entity == "global":
        return "total=all"
    level, _, name = entity.partition(":")
    return f"{'api_key' if level == 'key' else level}={name}"


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


# (granularity, window start) -> {dimension: totals}, or None when the rollup is not usable now
# or keeps no such granularity.
Rollup = Callable[[str, int], Mapping[str, Totals] | None]


def fleet_rollup(view: Callable[[], FleetView | None]) -> Rollup:
    """The rollups as a router's fleet view has them (the costs snapshot topic), when fresh."""

    def totals(grain: str, start: int) -> Mapping[str, Totals] | None:
        current = view()
        if current is None or Topic.COSTS in current.stale:
            return None
        fresh = current.freshness.get(Topic.COSTS)
        if (fresh is not None and fresh.catching_up) or not keeps(current.costs, grain):
            return None
        return current.cost_totals(grain, start)

    return totals


def keeps(latest: Mapping[str, JsonDict | None], grain: str) -> bool:
    """Whether the costs rollups keep windows of `grain` (every cost record lists each
    granularity its consumer keeps, empty or not: the first one found answers)."""
    for value in latest.values():
        if value is not None and "windows" in value:
            return grain in value["windows"]
    return False


class Reconciler:
    def __init__(self, governor: Governor, rollup: Rollup, *, restore: bool = True) -> None:
        self._governor = governor
        self._rollup = rollup
        self._restore = restore

    async def run_once(self, now: float) -> list[Reconciliation]:
        bounds = [b for b in named_bounds(self._governor.plan) if granularity(b) is not None]
        checks = build_checks(
            bounds, windows_of(bounds, now), Estimate(0, 0), self._governor.plan.reservation_ttl_s
        )
        store = self._governor.store
        out: list[Reconciliation] = []
        for bound, check, window in zip(bounds, checks, windows_of(bounds, now), strict=True):
            assert window is not None
            grain = granularity(bound)
            assert grain is not None
            start = int(window.start)
            rolled = self._rollup(grain, start)
            if rolled is None:
                continue
            totals = rolled.get(rollup_dimension(bound.entity))
            rollup = 0 if totals is None else totals.cost_nanos_usd
            try:
                used, _ = await store.read(check.counter, check.oldest_bucket, now)
                restored = 0
                if self._restore and rollup > used:
                    restored = await store.raise_used(check.counter, rollup, check.expire_at, now)
            except StoreUnavailableError as exc:
                log.warning("limits: reconciliation skipped, store unreachable: %s", exc)
                return out
            level = bound.limit.level.value
            result = Reconciliation(level, bound.entity, start, used, rollup, restored)
            DRIFT.labels(level, bound.entity).set(result.drift)
            if restored:
                RESTORED.labels(level, bound.entity).inc(restored)
                log.warning(
                    "limits: restored %d nano-USD of %s's spend from the costs rollup", restored, bound.entity
                )
            out.append(result)
        return out
