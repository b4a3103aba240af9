"""The reconciler: the store's settled spend against the costs rollup of the same window and
entity, the drift exported, and spend a lost store forgot restored from the rollup, once even
when replicas reconcile at the same time. Both stores (a real redis-server for the second); the
restarted-empty store is a real Redis FLUSHALL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from consumers import events as ce
from consumers.costs.aggregate import CostsAggregator, CostsConfig
from router_contract.cost_totals import Totals
from router_contract.snapshot_keys import record_key
from router_contract.windows import Grain, grain_name
from router_service.fleet.config import FleetConfig
from router_service.fleet.view import Topic, build_view
from router_service.identity.model import Identity
from router_service.limits.errors import BudgetExceededError
from router_service.limits.governor import Governor
from router_service.limits.model import Estimate
from router_service.limits.periods import Period, PeriodUnit
from router_service.limits.plan import build_checks, windows_of
from router_service.limits.reconcile import Reconciler, Rollup, fleet_rollup, granularity, rollup_dimension
from router_service.limits.report import named_bounds
from router_service.limits.schema import LimitsConfig
from router_service.limits.store import LimitStore
from tests.consumers.helpers import consumer_event
from tests.limits.conftest import make_store

SEARCH = Identity(key_id="k_1", team="search")
CONFIG = LimitsConfig.model_validate(
    {
        "budgets": [
            {"level": "team", "entity": "search", "usd": "10.00", "period": "day"},
            # Rolling: reconciled from the rollups' buckets, when given (test_reconcile_rolling.py).
            {"level": "global", "usd": "100.00", "period": "month", "rolling": True},
        ]
    }
)


class FixedRollup:
    """The rollup as the fleet view would give it: {dimension: totals} of one window."""

    def __init__(self, cost_nanos: int | None) -> None:
        self.cost_nanos = cost_nanos
        self.asked: list[tuple[str, int]] = []

    def __call__(self, grain: str, start: int) -> Mapping[str, Totals] | None:
        self.asked.append((grain, start))
        if self.cost_nanos is None:
            return None  # stale or catching up
        return {"team=search": Totals(requests=3, cost_nanos_usd=self.cost_nanos)}


def drift() -> float | None:
    return REGISTRY.get_sample_value(
        "llmrouter_limits_drift_nanos", {"level": "team", "entity": "team:search", "period": "day (UTC)"}
    )


async def spend(governor: Governor, nanos: int) -> None:
    await (await governor.admit(SEARCH, Estimate(cost_nanos=nanos, tokens=1))).settle(nanos, 1)


def test_every_calendar_budget_has_the_rollup_window_of_its_zone() -> None:
    grains = {
        (b.limit.period_text, b.entity): granularity(b)
        for zone in ("UTC", "Europe/Berlin")
        for b in named_bounds(_budgets(zone).to_plan())
    }
    assert grains == {
        ("day (UTC)", "team:search"): "day",
        ("month (UTC)", "global"): "month",
        ("week (UTC)", "customer:acme"): "week",
        ("rolling day", "key:k_1"): None,  # reconciled from buckets instead (rolling_grain)
        ("day (Europe/Berlin)", "team:search"): "day@Europe/Berlin",
        ("month (Europe/Berlin)", "global"): "month@Europe/Berlin",
        ("week (Europe/Berlin)", "customer:acme"): "week@Europe/Berlin",
    }
    assert [rollup_dimension(e) for e in ("team:search", "key:k_1", "customer:acme", "global")] == [
        "team=search",
        "api_key=k_1",
        "customer=acme",
        "total=all",
    ]


def _budgets(zone: str) -> LimitsConfig:
    return LimitsConfig.model_validate(
        {
            "time_zone": zone,
            "budgets": [
                {"level": "team", "entity": "search", "usd": "10.00", "period": "day"},
                {"level": "global", "usd": "100.00", "period": "month"},
                {"level": "customer", "entity": "acme", "usd": "50.00", "period": "week"},
                {"level": "key", "entity": "k_1", "usd": "1.00", "period": "day", "rolling": True},
            ],
        }
    )


@settings(max_examples=300, deadline=None)
@given(
    unit=st.sampled_from([PeriodUnit.HOUR, PeriodUnit.DAY, PeriodUnit.WEEK, PeriodUnit.MONTH]),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Chatham"]),
    t=st.integers(min_value=631_152_000, max_value=2_840_140_800),  # 1990 to 2060
)
def test_a_budgets_window_is_its_rollup_window(unit: PeriodUnit, zone: str, t: int) -> None:
    """What the reconciler compares is the same span of time on both sides, DST and month ends
    included: the budget's window (periods.py) and the consumers' window (windows.py)."""
    window = Period(unit, zone).window(t)
    grain = Grain(grain_name(unit.value, zone))
    assert (grain.start(t), grain.end(grain.start(t))) == (window.start, window.end)


async def test_drift_is_exported_and_a_store_ahead_of_the_rollup_is_left_alone(backend: str) -> None:
    store = make_store(backend)
    try:
        governor = Governor(CONFIG.to_plan(), store)
        await spend(governor, 700_000_000)
        rollup = FixedRollup(600_000_000)  # the last settle is not in the rollup yet
        [result] = await Reconciler(governor, rollup).run_once(time.time())
        assert (result.store_used, result.rollup_cost, result.drift, result.restored) == (
            700_000_000,
            600_000_000,
            100_000_000,
            0,
        )
        assert drift() == 100_000_000
        assert rollup.asked == [("day", result.window_start)]
        assert result.window_start == int(time.time()) // 86400 * 86400
    finally:
        await store.close()


async def test_a_store_restarted_empty_gets_the_days_spend_back_from_the_rollup(redis_server: str) -> None:
    store = make_store(redis_server)
    try:
        governor = Governor(CONFIG.to_plan(), store)
        await spend(governor, 9_000_000_000)
        client = aioredis.Redis.from_url(redis_server)
        try:
            await client.flushall()  # what a Redis restarted without persistence holds
        finally:
            await client.aclose()
        # Without the reconciler the team could spend its $10 again today.
        during = await governor.admit(SEARCH, Estimate(cost_nanos=5_000_000_000, tokens=1))
        assert during.counted
        await during.release()
        rollup = FixedRollup(9_000_000_000)
        # Three replicas reconciling at once restore the spend once (an atomic max, not an add).
        results = await asyncio.gather(
            *(Reconciler(governor, rollup).run_once(time.time()) for _ in range(3))
        )
        assert sum(r.restored for [r] in results) == 9_000_000_000
        used = await _used(store, governor)
        assert used == 9_000_000_000
        with pytest.raises(BudgetExceededError):  # $9 spent: $2 more would pass the $10
            await governor.admit(SEARCH, Estimate(cost_nanos=2_000_000_000, tokens=1))
        [again] = await Reconciler(governor, rollup).run_once(time.time())
        assert again.restored == 0 and again.drift == 0
    finally:
        await store.close()


async def test_a_stale_rollup_is_not_used(backend: str) -> None:
    store = make_store(backend)
    try:
        governor = Governor(CONFIG.to_plan(), store)
        assert await Reconciler(governor, FixedRollup(None)).run_once(time.time()) == []
        assert await _used(store, governor) == 0
    finally:
        await store.close()


async def _used(store: LimitStore, governor: Governor) -> int:
    now = time.time()
    bounds = [b for b in named_bounds(governor.plan) if b.entity == "team:search"]
    [check] = build_checks(bounds, windows_of(bounds, now), Estimate(0, 0), 0)
    used, _ = await store.read(check.counter, check.oldest_bucket, now)
    return used


async def test_raise_used_only_ever_raises(store: LimitStore) -> None:
    expire_at = time.time() + 3600
    assert await store.raise_used("cost:team:t:day:x", 500, expire_at, time.time()) == 500
    assert await store.raise_used("cost:team:t:day:x", 300, expire_at, time.time()) == 0
    assert await store.raise_used("cost:team:t:day:x", 800, expire_at, time.time()) == 300
    assert await store.read("cost:team:t:day:x", -1, time.time()) == (800, 0)


def _fleet_rollup(now: float, costs: CostsConfig, nanos: int) -> Rollup:
    """The consumers' real rollup of one completion of team search at `now`, as a router's fleet
    view reads it from the snapshot records."""
    aggregator = CostsAggregator(costs)
    aggregator.apply(consumer_event(ce.Completion("sim", "m", 10, 5, cost_nanos_usd=nanos), time_s=now), 0)
    latest = {record_key(r.key, 0): r.value for r in aggregator.changes(now)}
    view = build_view({Topic.COSTS: latest}, frozenset(), now, FleetConfig())
    return fleet_rollup(lambda: view)


@pytest.mark.parametrize(
    ("zone", "consumer_zones", "reconciled"),
    [("UTC", (), True), ("Europe/Berlin", ("Europe/Berlin",), True), ("Europe/Berlin", (), False)],
)
async def test_week_and_month_budgets_get_a_lost_stores_spend_back_from_the_rollups(
    backend: str, zone: str, consumer_zones: tuple[str, ...], reconciled: bool
) -> None:
    config = LimitsConfig.model_validate(
        {
            "time_zone": zone,
            "budgets": [
                {"level": "team", "entity": "search", "usd": "10.00", "period": "month"},
                {"level": "team", "entity": "search", "usd": "5.00", "period": "week"},
            ],
        }
    )
    now = time.time()
    rollup = _fleet_rollup(now, CostsConfig(time_zones=consumer_zones), 3_000_000_000)
    store = make_store(backend)  # empty: the store lost the $3 the event log has
    try:
        results = await Reconciler(Governor(config.to_plan(), store), rollup).run_once(now)
        if not reconciled:  # the consumers keep no Berlin windows: nothing to compare with
            assert results == []
            return
        restored = [(r.store_used, r.rollup_cost, r.restored) for r in results]
        assert restored == [(0, 3_000_000_000, 3_000_000_000)] * 2
        governor = Governor(config.to_plan(), store)
        with pytest.raises(BudgetExceededError):  # $3 of the week's $5 spent: $2.50 more would pass
            await governor.admit(SEARCH, Estimate(cost_nanos=2_500_000_000, tokens=1))
    finally:
        await store.close()
