"""Rolling budgets reconciled from the costs rollups' buckets: the same bucket bounds on both
sides, the per-bucket corrections (a lost store gets each bucket back, a settle the store counted
one bucket later is not counted twice), and, through the consumers' real aggregator, the snapshot
wire form and the fleet view, a store restarted empty (a real Redis FLUSHALL) that refuses the
spend it had forgotten, restores it once with replicas reconciling at once, and lets the restored
spend age out of the window with the buckets it was spent in."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from consumers import events as ce
from consumers.costs.aggregate import CostsAggregator, CostsConfig
from router_contract import snapshot_records as sr
from router_contract.snapshot_keys import record_key
from router_contract.windows import RollingGrain
from router_service.fleet.config import FleetConfig
from router_service.fleet.view import FleetView, Topic, build_view
from router_service.identity.model import Identity
from router_service.limits.errors import BudgetExceededError
from router_service.limits.governor import Governor
from router_service.limits.model import Estimate
from router_service.limits.periods import Period, PeriodUnit
from router_service.limits.plan import build_checks, windows_of
from router_service.limits.reconcile import (
    Reconciler,
    bucket_corrections,
    fleet_rolling,
    fleet_rollup,
    rolling_grain,
)
from router_service.limits.report import named_bounds
from router_service.limits.schema import LimitsConfig
from router_service.limits.store import LimitStore
from tests.consumers.helpers import consumer_event
from tests.limits.conftest import make_store

SEARCH = Identity(key_id="k_1", team="search")
HOUR = 3600.0
USD = 1_000_000_000


def _config(period: str = "day") -> LimitsConfig:
    return LimitsConfig.model_validate(
        {
            "budgets": [
                {"level": "team", "entity": "search", "usd": "10.00", "period": period, "rolling": True}
            ]
        }
    )


@settings(max_examples=300, deadline=None)
@given(
    unit=st.sampled_from([PeriodUnit.HOUR, PeriodUnit.DAY, PeriodUnit.WEEK, PeriodUnit.MONTH]),
    t=st.floats(min_value=631_152_000, max_value=2_840_140_800, allow_nan=False),
)
def test_the_rollups_buckets_are_the_stores_buckets(unit: PeriodUnit, t: float) -> None:
    window = Period(unit, rolling=True).window(t)
    grain = RollingGrain(unit.value)
    assert (f"u{grain.bucket(t)}", grain.oldest(t)) == (window.field, window.oldest_bucket)


def test_only_rolling_budgets_have_buckets() -> None:
    config = LimitsConfig.model_validate(
        {
            "budgets": [
                {"level": "team", "entity": "search", "usd": "1", "period": "week", "rolling": True},
                {"level": "team", "entity": "search", "usd": "1", "period": "week"},
                {"level": "global", "usd": "1", "period": "month", "rolling": True},
            ],
            "rate_limits": [{"level": "global", "requests_per_minute": 5}],
        }
    )
    grains = [rolling_grain(b) for b in named_bounds(config.to_plan())]
    assert [(g.period, g.bucket_ms) if g else None for g in grains] == [
        ("week", 25_200_000),  # 7 h
        None,
        ("month", 108_000_000),  # 30 h
        None,
    ]


@pytest.mark.parametrize(
    ("stored", "rolled", "expected"),
    [
        ({}, {10: 5, 12: 7}, {10: 5, 12: 7}),  # a lost store: every bucket back where it was spent
        ({10: 5, 12: 9}, {10: 5, 12: 7}, {}),  # the store ahead: the rollup has not counted a settle yet
        ({11: 5}, {10: 5}, {}),  # settled a moment after its event time, in the next bucket: not twice
        ({12: 4}, {10: 3, 12: 4}, {10: 3}),  # an older bucket lost, the newest intact
        ({12: 1}, {10: 3, 12: 4}, {12: 3, 10: 3}),  # partly lost in the newest bucket too
        ({12: 6}, {10: 3, 12: 4}, {10: 1}),  # 2 of the newest bucket's excess cover part of an older one
        ({9: 50}, {9: 50, 10: 3}, {10: 3}),  # bucket 9 is outside oldest..newest: no part in it
    ],
)
def test_bucket_corrections(stored: dict[int, int], rolled: dict[int, int], expected: dict[int, int]) -> None:
    assert bucket_corrections(stored, rolled, 10, 12) == expected


def _suffixes_hold(stored: dict[int, int], rolled: dict[int, int], oldest: int, newest: int) -> bool:
    return all(
        sum(stored.get(b, 0) for b in range(k, newest + 1))
        >= sum(rolled.get(b, 0) for b in range(k, newest + 1))
        for k in range(oldest, newest + 1)
    )


@settings(max_examples=300, deadline=None)
@given(
    stored=st.dictionaries(st.integers(0, 24), st.integers(0, 10**12), max_size=25),
    rolled=st.dictionaries(st.integers(0, 24), st.integers(0, 10**12), max_size=25),
)
def test_corrections_make_every_suffix_whole_and_add_no_more_than_the_largest_shortfall(
    stored: dict[int, int], rolled: dict[int, int]
) -> None:
    fixes = bucket_corrections(stored, rolled, 0, 24)
    corrected = {b: stored.get(b, 0) + fixes.get(b, 0) for b in range(25)}
    assert _suffixes_hold(corrected, rolled, 0, 24)
    shortfalls = [sum(rolled.get(b, 0) - stored.get(b, 0) for b in range(k, 25)) for k in range(25)]
    assert sum(fixes.values()) == max(0, *shortfalls)
    assert all(amount > 0 for amount in fixes.values())


def _view(
    now: float,
    spends: list[tuple[float, int]],
    costs: CostsConfig | None = None,
    teams: tuple[str, ...] = ("search",),
) -> FleetView:
    """The consumers' real rollups of the teams' completions (event time, nano-USD; each spend by
    each team), through the snapshot wire form, as a router's fleet view reads them."""
    aggregator = CostsAggregator(costs or CostsConfig())
    for offset, (at, nanos, team) in enumerate(sorted((at, n, team) for at, n in spends for team in teams)):
        event = consumer_event(ce.Completion("sim", "m", 10, 5, cost_nanos_usd=nanos), time_s=at, team=team)
        aggregator.apply(event, offset)
    latest = {}
    for record in aggregator.changes(now):
        value = {
            **record.value,
            "generated_at": sr.rfc3339(now),
            "source": {"topic": "t", "partition": 0, "offset": 9},
        }
        latest[record_key(record.key, 0)] = sr.decode(sr.encode(value), sr.headers("protobuf"))
    return build_view({Topic.COSTS: latest}, frozenset(), now, FleetConfig())


def _reconciler(governor: Governor, view: FleetView) -> Reconciler:
    return Reconciler(governor, fleet_rollup(lambda: view), rolling=fleet_rolling(lambda: view))


async def _window_used(store: LimitStore, governor: Governor, now: float) -> int:
    bounds = named_bounds(governor.plan)
    [check] = build_checks(bounds, windows_of(bounds, now), Estimate(0, 0), 0)
    used, _ = await store.read(check.counter, check.oldest_bucket, now)
    return used


def drift() -> float | None:
    labels = {"level": "team", "entity": "team:search", "period": "rolling day"}
    return REGISTRY.get_sample_value("llmrouter_limits_drift_nanos", labels)


async def test_a_store_restarted_empty_gets_each_buckets_spend_back_once(redis_server: str) -> None:
    now = time.time()
    # $1.50 an hour over the last 5 hours ($7.50), and $5 two days ago, outside the window.
    spends = [(now - h * HOUR, 1_500_000_000) for h in range(5)] + [(now - 48 * HOUR, 5 * USD)]
    store = make_store(redis_server)
    try:
        governor = Governor(_config().to_plan(), store)
        client = aioredis.Redis.from_url(redis_server)
        try:
            await client.flushall()  # the store lost the last day's spend the event log has
        finally:
            await client.aclose()
        view = _view(now, spends)
        results = await asyncio.gather(*(_reconciler(governor, view).run_once(now) for _ in range(3)))
        assert sum(r.restored for [r] in results) == 7_500_000_000  # three replicas: restored once
        assert [(r.store_used, r.rollup_cost, r.period) for [r] in results] == [
            (0, 7_500_000_000, "rolling day")
        ] * 3
        assert drift() == -7_500_000_000
        assert await _window_used(store, governor, now) == 7_500_000_000
        with pytest.raises(BudgetExceededError):  # $7.50 of $10 spent in the last day: $3 more would pass
            await governor.admit(SEARCH, Estimate(cost_nanos=3 * USD, tokens=1))
        # Each restored part is in the bucket it was spent in: 22 hours on, the two oldest hours'
        # $3 have aged out, as the spend itself would have.
        assert await _window_used(store, governor, now + 22 * HOUR) == 4_500_000_000
        [again] = await _reconciler(governor, view).run_once(now)
        assert (again.restored, again.drift) == (0, 0)
    finally:
        await store.close()


async def test_a_store_ahead_of_the_rollup_is_left_alone(backend: str) -> None:
    store = make_store(backend)
    try:
        governor = Governor(_config().to_plan(), store)
        await (await governor.admit(SEARCH, Estimate(cost_nanos=USD, tokens=1))).settle(700_000_000, 1)
        now = time.time()
        view = _view(now, [(now - 1.0, 600_000_000)])  # the last $0.10 is not in the rollup yet
        [result] = await _reconciler(governor, view).run_once(now)
        assert (result.store_used, result.rollup_cost, result.restored) == (700_000_000, 600_000_000, 0)
        assert drift() == 100_000_000
        assert await _window_used(store, governor, now) == 700_000_000
    finally:
        await store.close()


async def test_rollups_without_buckets_reconcile_no_rolling_budget(backend: str) -> None:
    """A consumer that keeps no rolling-day buckets (older, or configured without them) is not a
    rollup that says "nothing was spent": nothing is compared, nothing restored."""
    store = make_store(backend)
    try:
        governor = Governor(_config().to_plan(), store)
        now = time.time()
        view = _view(now, [(now - 1.0, 2 * USD)], CostsConfig(rolling_periods=("week",)))
        assert await _reconciler(governor, view).run_once(now) == []
        assert await Reconciler(governor, fleet_rollup(lambda: view)).run_once(now) == []  # not asked
        assert await _window_used(store, governor, now) == 0
    finally:
        await store.close()


async def test_raise_used_raises_one_bucket_and_read_buckets_lists_them(store: LimitStore) -> None:
    now = time.time()
    assert await store.raise_used("cost:team:t:rolling-day", 500, now + 3600, now, "u7") == 500
    assert await store.raise_used("cost:team:t:rolling-day", 300, now + 3600, now, "u7") == 0
    assert await store.raise_used("cost:team:t:rolling-day", 200, now + 3600, now, "u9") == 200
    assert await store.read_buckets("cost:team:t:rolling-day", now) == {7: 500, 9: 200}
    assert await store.read("cost:team:t:rolling-day", 8, now) == (200, 0)


async def test_every_entitys_budget_of_a_star_limit_is_reconciled(backend: str) -> None:
    """A "*" budget is one budget per team: each team the rollups have spend for gets its own back
    (a team spelled with characters the snapshot keys escape included)."""
    config = LimitsConfig.model_validate(
        {
            "budgets": [
                {"level": "team", "usd": "10.00", "period": "day", "rolling": True},
                {"level": "team", "usd": "10.00", "period": "month"},
                {"level": "team", "entity": "ads", "usd": "50.00", "period": "day", "rolling": True},
            ]
        }
    )
    now = time.time()
    teams = ("search", "ads", "r&d/eu")
    view = _view(now, [(now - 60.0, 2 * USD)], teams=teams)
    store = make_store(backend)
    try:
        results = await _reconciler(Governor(config.to_plan(), store), view).run_once(now)
        assert sorted((r.entity, r.period, r.restored) for r in results) == sorted(
            # ads: its own budget replaces the level's cost budgets for it (plan.bounds_for)
            [(f"team:{team}", "month (UTC)", 2 * USD) for team in teams if team != "ads"]
            + [(f"team:{team}", "rolling day", 2 * USD) for team in teams]
        )
        with pytest.raises(BudgetExceededError):
            await Governor(config.to_plan(), store).admit(
                Identity(key_id="k", team="r&d/eu"), Estimate(cost_nanos=8 * USD + 1, tokens=1)
            )
    finally:
        await store.close()


async def test_a_pass_merges_each_rollup_window_once_however_many_entities_a_star_budget_has(
    backend: str,
) -> None:
    """Each merge reads the whole costs snapshot on the event loop: once per window and pass,
    not once per team (which made a pass over thousands of teams take seconds)."""
    config = LimitsConfig.model_validate(
        {
            "budgets": [
                {"level": "team", "usd": "10.00", "period": "day", "rolling": True},
                {"level": "team", "usd": "10.00", "period": "month"},
            ]
        }
    )
    now = time.time()
    teams = tuple(f"t{i}" for i in range(30))
    view = _view(now, [(now - 60.0, 2 * USD)], teams=teams)
    merges: list[tuple[str, int]] = []
    rollup, rolling = fleet_rollup(lambda: view), fleet_rolling(lambda: view)

    def counted_rollup(grain: str, start: int) -> Any:
        merges.append((grain, start))
        return rollup(grain, start)

    def counted_rolling(period: str, bucket_ms: int) -> Any:
        merges.append((period, bucket_ms))
        return rolling(period, bucket_ms)

    store = make_store(backend)
    try:
        reconciler = Reconciler(Governor(config.to_plan(), store), counted_rollup, rolling=counted_rolling)
        results = await reconciler.run_once(now)
        assert len(results) == 2 * len(teams)  # every team's two budgets
        assert len(merges) == len(set(merges)) == 2  # one month window, one rolling day
        await reconciler.run_once(now)
        assert len(merges) == 4  # the next pass reads the snapshot afresh
    finally:
        await store.close()


async def test_the_entities_of_a_star_budget_are_one_series_not_one_each(backend: str) -> None:
    """Entities never become labels unless the config names them: a "*" budget's drift and
    restored spend are summed per level and period ("team:*")."""
    config = LimitsConfig.model_validate({"budgets": [{"level": "team", "usd": "10.00", "period": "week"}]})
    now = time.time()
    teams = tuple(f"series{i}" for i in range(5))
    view = _view(now, [(now - 60.0, 2 * USD)], teams=teams)
    store = make_store(backend)
    try:
        results = await _reconciler(Governor(config.to_plan(), store), view).run_once(now)
        assert {r.restored for r in results} == {2 * USD} and len(results) == len(teams)
        period = results[0].period
        star = {"level": "team", "entity": "team:*", "period": period}
        assert REGISTRY.get_sample_value("llmrouter_limits_drift_nanos", star) == -2 * USD * len(teams)
        for team in teams:
            one = {"level": "team", "entity": f"team:{team}", "period": period}
            assert REGISTRY.get_sample_value("llmrouter_limits_drift_nanos", one) is None
            assert REGISTRY.get_sample_value("llmrouter_limits_restored_nanos_total", one) is None
    finally:
        await store.close()
