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
from prometheus_client import REGISTRY

from router_contract.cost_totals import Totals
from router_service.identity.model import Identity
from router_service.limits.errors import BudgetExceededError
from router_service.limits.governor import Governor
from router_service.limits.model import Estimate
from router_service.limits.plan import build_checks, windows_of
from router_service.limits.reconcile import Reconciler, granularity, rollup_dimension
from router_service.limits.report import named_bounds
from router_service.limits.schema import LimitsConfig
from router_service.limits.store import LimitStore
from tests.limits.conftest import make_store

SEARCH = Identity(key_id="k_1", team="search")
CONFIG = LimitsConfig.model_validate(
    {
        "budgets": [
            {"level": "team", "entity": "search", "usd": "10.00", "period": "day"},
            {"level": "global", "usd": "100.00", "period": "month"},  # no rollup window is a month
        ]
    }
)


class Rollup:
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
        "llmrouter_limits_drift_nanos", {"level": "team", "entity": "team:search"}
    )


async def spend(governor: Governor, nanos: int) -> None:
    await (await governor.admit(SEARCH, Estimate(cost_nanos=nanos, tokens=1))).settle(nanos, 1)


def test_only_utc_calendar_hour_and_day_budgets_have_a_rollup_window() -> None:
    grains = {b.entity: granularity(b) for b in named_bounds(CONFIG.to_plan())}
    assert grains == {"team:search": "day", "global": None}
    assert [rollup_dimension(e) for e in ("team:search", "key:k_1", "customer:acme", "global")] == [
        "team=search",
        "api_key=k_1",
        "customer=acme",
        "total=all",
    ]


async def test_drift_is_exported_and_a_store_ahead_of_the_rollup_is_left_alone(backend: str) -> None:
    store = make_store(backend)
    try:
        governor = Governor(CONFIG.to_plan(), store)
        await spend(governor, 700_000_000)
        rollup = Rollup(600_000_000)  # the last settle is not in the rollup yet
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
        rollup = Rollup(9_000_000_000)
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
        assert await Reconciler(governor, Rollup(None)).run_once(time.time()) == []
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
