"""The facade the request path calls, on both stores: refusals name the level, entity, limit and
period; soft thresholds downgrade; settle/release; the failure policy when the store is down; and
the RESOURCE_EXHAUSTED status the API builds from these errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.rpc import error_details_pb2
from prometheus_client import REGISTRY

from router_service.api.status import _build
from router_service.catalog import Deployment, Price
from router_service.embedded.redis_server import EmbeddedRedis
from router_service.identity.model import Identity
from router_service.limits.cost import worst_case
from router_service.limits.errors import (
    BudgetExceededError,
    LimitExceededError,
    LimitsUnavailableError,
    RequestCostCeilingError,
)
from router_service.limits.governor import UNLIMITED, Governor
from router_service.limits.model import Estimate, FailurePolicy, Level, Limit, Metric
from router_service.limits.periods import Period, PeriodUnit
from router_service.limits.plan import LimitsPlan
from router_service.limits.redis_store import RedisLimitStore
from router_service.limits.rpc_details import limit_details
from router_service.limits.store import LimitStore

USD = 1_000_000_000
MONTH = Period(PeriodUnit.MONTH, "Europe/Berlin")
MINUTE = Period(PeriodUnit.MINUTE)
SEARCH = Identity(key_id="k_search", team="search", customer="acme")


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clock() -> Clock:
    return Clock()


def governor(store: LimitStore, clock: Clock, *limits: Limit, ttl: float = 60.0) -> Governor:
    return Governor(LimitsPlan(limits, reservation_ttl_s=ttl), store, clock=clock)


def team_budget(usd: int = 1, **kw: object) -> Limit:
    return Limit(Level.TEAM, Metric.COST, usd * USD, MONTH, **kw)  # type: ignore[arg-type]


async def test_a_hard_budget_refuses_with_level_entity_limit_and_reset(
    store: LimitStore, clock: Clock
) -> None:
    gov = governor(store, clock, team_budget())
    a = await gov.admit(SEARCH, Estimate(cost_nanos=600_000_000, tokens=100))
    with pytest.raises(BudgetExceededError) as refused:
        await gov.admit(SEARCH, Estimate(cost_nanos=600_000_000, tokens=100))
    err = refused.value
    assert (err.level, err.entity, err.limit, err.current, err.asked) == (
        Level.TEAM,
        "team:search",
        USD,
        600_000_000,
        600_000_000,
    )
    assert err.period == "month (Europe/Berlin)"
    assert err.retry_after_s == pytest.approx(MONTH.window(clock.now).end - clock.now)
    await a.settle(250_000_000, 90)  # the exact cost: the rest comes back
    await gov.admit(SEARCH, Estimate(cost_nanos=600_000_000, tokens=100))
    # Another team has its own counter (entity "*": each team separately).
    await gov.admit(Identity(key_id="k2", team="ads"), Estimate(cost_nanos=900_000_000, tokens=1))


async def test_settle_and_release_happen_once(store: LimitStore, clock: Clock) -> None:
    gov = governor(store, clock, team_budget())
    a = await gov.admit(SEARCH, Estimate(cost_nanos=USD, tokens=1))
    await a.release()
    await a.settle(USD, 1)  # ignored: already released
    b = await gov.admit(SEARCH, Estimate(cost_nanos=USD, tokens=1))  # the whole dollar came back
    await b.settle(USD, 1)
    await b.settle(USD, 1)
    with pytest.raises(BudgetExceededError):
        await gov.admit(SEARCH, Estimate(cost_nanos=1, tokens=1))


async def test_soft_budget_downgrades_at_the_threshold_and_never_refuses(
    store: LimitStore, clock: Clock
) -> None:
    soft = team_budget(hard=False, downgrade_at=0.8, downgrade_policy="cheap")
    gov = governor(store, clock, soft)
    first = await gov.admit(SEARCH, Estimate(cost_nanos=700_000_000, tokens=1))
    assert first.downgrade_policy == ""
    second = await gov.admit(SEARCH, Estimate(cost_nanos=100_000_000, tokens=1))  # 800M: 80% reached
    assert second.downgrade_policy == "cheap"
    assert second.verdict.downgraded_by is not None and second.verdict.downgraded_by.entity == "team:search"
    third = await gov.admit(SEARCH, Estimate(cost_nanos=USD, tokens=1))  # past 100%: soft, admitted
    assert third.downgrade_policy == "cheap" and [b.entity for b in third.verdict.over_soft] == [
        "team:search"
    ]


async def test_every_level_counts_and_the_most_specific_refusal_is_reported(
    store: LimitStore, clock: Clock
) -> None:
    limits = (
        Limit(Level.KEY, Metric.REQUESTS, 2, MINUTE),
        Limit(Level.CUSTOMER, Metric.TOKENS, 1_000, MINUTE),
        Limit(Level.GLOBAL, Metric.CONCURRENT, 3, None),
    )
    gov = governor(store, clock, *limits)
    other_key = Identity(key_id="k_other", team="search", customer="acme")
    a = await gov.admit(SEARCH, Estimate(0, 400))
    await gov.admit(SEARCH, Estimate(0, 400))
    with pytest.raises(LimitExceededError) as refused:
        await gov.admit(SEARCH, Estimate(0, 1))  # the key's third request this minute
    assert (refused.value.entity, refused.value.metric, refused.value.reason) == (
        "key:k_search",
        Metric.REQUESTS,
        "RATE_LIMITED",
    )
    assert refused.value.retry_after_s is not None and 0 < refused.value.retry_after_s <= 60
    with pytest.raises(LimitExceededError, match="customer:acme") as tokens:
        await gov.admit(other_key, Estimate(0, 201))  # 800 + 201 tokens of acme this minute
    assert tokens.value.metric is Metric.TOKENS
    third = await gov.admit(other_key, Estimate(0, 100))
    with pytest.raises(LimitExceededError, match="global") as busy:
        await gov.admit(Identity(key_id="k3"), Estimate(0, 0))  # 3 in flight
    assert busy.value.metric is Metric.CONCURRENT and busy.value.retry_after_s is None
    await third.release()
    await gov.admit(Identity(key_id="k3"), Estimate(0, 0))
    # Tokens settle to the real count: the minute's counter holds what was used.
    await a.settle(0, 50)
    await gov.admit(other_key, Estimate(0, 450))  # 50 + 400 + 100 released + 450 <= 1000


async def test_a_named_entity_replaces_the_levels_default(store: LimitStore, clock: Clock) -> None:
    gov = governor(
        store, clock, team_budget(1), Limit(Level.TEAM, Metric.COST, 5 * USD, MONTH, entity="search")
    )
    await gov.admit(SEARCH, Estimate(cost_nanos=4 * USD, tokens=1))
    with pytest.raises(BudgetExceededError):
        await gov.admit(Identity(key_id="k2", team="ads"), Estimate(cost_nanos=2 * USD, tokens=1))


async def test_per_request_ceiling_refuses_before_counting(store: LimitStore, clock: Clock) -> None:
    gov = governor(store, clock, team_budget(10, max_request_nanos=USD // 2))
    with pytest.raises(RequestCostCeilingError, match="per-request ceiling"):
        await gov.admit(SEARCH, Estimate(cost_nanos=USD // 2 + 1, tokens=1))
    assert await store.read(f"cost:team:search:{MONTH.window(clock.now).key}", -1, clock.now) == (0, 0)


async def test_callers_without_a_limited_level_pay_nothing(store: LimitStore, clock: Clock) -> None:
    gov = governor(store, clock, team_budget())
    assert await gov.admit(Identity(key_id="k_no_team"), Estimate(USD * 5, 1)) is UNLIMITED


async def test_a_dead_routers_reservations_come_back(store: LimitStore, clock: Clock) -> None:
    gov = governor(store, clock, team_budget(), ttl=30.0)
    await gov.admit(SEARCH, Estimate(cost_nanos=USD, tokens=1))  # never settled: its router died
    with pytest.raises(BudgetExceededError):
        await gov.admit(SEARCH, Estimate(cost_nanos=1, tokens=1))
    clock.now += 30.0
    late = await gov.admit(SEARCH, Estimate(cost_nanos=USD, tokens=1))
    before = REGISTRY.get_sample_value("llmrouter_limits_late_settles_total") or 0.0
    clock.now += 31.0
    other = await gov.admit(SEARCH, Estimate(cost_nanos=USD // 2, tokens=1))  # gives `late` back
    await late.settle(USD // 2 + 1, 1)  # after its hold was given back: still counted in full
    assert REGISTRY.get_sample_value("llmrouter_limits_late_settles_total") == before + 1
    await other.release()
    with pytest.raises(BudgetExceededError):
        await gov.admit(SEARCH, Estimate(cost_nanos=USD // 2, tokens=1))


# --- the store unreachable ----------------------------------------------------------------


@pytest.fixture
async def stopped_redis(tmp_path: Path) -> AsyncIterator[RedisLimitStore]:
    """A Redis store whose real server was started and then stopped."""
    server = EmbeddedRedis(log_path=tmp_path / "redis.log")
    await server.start()
    url = server.url
    await server.stop()
    s = RedisLimitStore.from_url(url, timeout_s=0.5)
    yield s
    await s.close()


def failures(operation: str, policy: str) -> float:
    labels = {"operation": operation, "policy": policy}
    return REGISTRY.get_sample_value("llmrouter_limits_store_failures_total", labels) or 0.0


async def test_unreachable_store_fails_closed_or_open_per_limit(stopped_redis: RedisLimitStore) -> None:
    clock = Clock()
    closed = governor(stopped_redis, clock, team_budget())
    before = failures("reserve", "fail_closed")
    with pytest.raises(LimitsUnavailableError, match="team:search") as refused:
        await closed.admit(SEARCH, Estimate(1, 1))
    assert refused.value.status_code == "UNAVAILABLE"
    assert failures("reserve", "fail_closed") == before + 1

    rate = Limit(Level.KEY, Metric.REQUESTS, 1, MINUTE, on_store_failure=FailurePolicy.FAIL_OPEN)
    open_ = governor(stopped_redis, clock, rate)
    before = failures("reserve", "fail_open")
    admitted = await open_.admit(SEARCH, Estimate(1, 1))
    assert not admitted.counted and failures("reserve", "fail_open") == before + 1
    await admitted.settle(1, 1)  # nothing held: nothing to settle, no error

    # One fail_closed limit among the caller's refuses, whatever the others say.
    mixed = governor(stopped_redis, clock, rate, team_budget())
    with pytest.raises(LimitsUnavailableError):
        await mixed.admit(SEARCH, Estimate(1, 1))


async def test_a_settle_the_store_loses_is_counted(tmp_path: Path) -> None:
    server = EmbeddedRedis(log_path=tmp_path / "redis.log")
    await server.start()
    store = RedisLimitStore.from_url(server.url, timeout_s=0.5)
    try:
        gov = governor(store, Clock(), team_budget())
        admission = await gov.admit(SEARCH, Estimate(1, 1))
        await server.stop()
        before = failures("settle", "lost")
        await admission.settle(1, 1)  # does not raise: the request itself succeeded
        assert failures("settle", "lost") == before + 1
    finally:
        await store.close()
        await server.stop()


# --- what the caller sees -------------------------------------------------------------------


def unpack(status: object, kind: type) -> list:  # type: ignore[type-arg]
    found = []
    for any_ in status.details:  # type: ignore[attr-defined]
        message = kind()
        if any_.Unpack(message):
            found.append(message)
    return found


def test_over_a_budget_is_resource_exhausted_with_quota_failure_and_retry_info() -> None:
    err = BudgetExceededError(
        level=Level.TEAM,
        entity="team:search",
        metric=Metric.COST,
        limit=USD,
        period="month (UTC)",
        retry_after_s=3600.25,
        asked=2,
        current=USD - 1,
    )
    metadata, details = limit_details(err)
    rpc = _build(err, "req-1", metadata, *details)
    assert rpc.code.name == "RESOURCE_EXHAUSTED"
    (quota,) = unpack(rpc.status, error_details_pb2.QuotaFailure)
    (v,) = quota.violations
    assert (v.subject, v.quota_value, v.quota_metric) == (
        "team:search",
        USD,
        "llmrouter.limits/cost_nanos_usd",
    )
    assert v.quota_dimensions["level"] == "team" and "month" in v.quota_id
    (retry,) = unpack(rpc.status, error_details_pb2.RetryInfo)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (3600, 250_000_000)
    (info,) = unpack(rpc.status, error_details_pb2.ErrorInfo)
    assert info.reason == "BUDGET_EXCEEDED" and info.metadata["entity"] == "team:search"
    assert "$1.00" in rpc.message and "$0.999999999" in rpc.message


def test_a_per_request_ceiling_has_no_retry_info() -> None:
    err = RequestCostCeilingError(
        level=Level.KEY,
        entity="key:k1",
        metric=Metric.COST,
        limit=USD // 2,
        period="request",
        retry_after_s=None,
        asked=USD,
        current=0,
    )
    metadata, details = limit_details(err)
    rpc = _build(err, "", metadata, *details)
    assert rpc.code.name == "RESOURCE_EXHAUSTED" and not unpack(rpc.status, error_details_pb2.RetryInfo)
    assert unpack(rpc.status, error_details_pb2.ErrorInfo)[0].reason == "REQUEST_COST_CEILING"


def test_worst_case_is_the_dearest_candidate_at_its_output_cap() -> None:
    def deployment(name: str, p_in: int, p_out: int, max_out: int) -> Deployment:
        return Deployment("p", name, name, Price(p_in, p_out, p_in // 2), 128_000, max_out, frozenset())

    cheap, dear = (
        deployment("cheap", 150_000_000, 600_000_000, 16_384),
        deployment("dear", 3 * USD, 15 * USD, 4_096),
    )
    # The caller's cap (8,000) binds the cheap one; the dear one stops at its own 4,096.
    est = worst_case([cheap, dear], prompt_tokens=1_001, requested_max_output=8_000)
    assert est.cost_nanos == max(
        -(-(1_001 * 150_000_000 + 8_000 * 600_000_000) // 10**6),
        -(-(1_001 * 3 * USD + 4_096 * 15 * USD) // 10**6),
    )
    assert est.tokens == 1_001 + 8_000
    assert worst_case([cheap], 10, None).tokens == 10 + 16_384
