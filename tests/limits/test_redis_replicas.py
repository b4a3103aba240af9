"""Replicas sharing one real redis-server: many concurrent callers through three governors (each
its own connection pool, as three router processes) try to overspend one team budget and one
tokens-per-minute limit; what they get admitted stays within the limit plus the bound."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

from router_service.identity.model import Identity
from router_service.limits.errors import LimitExceededError
from router_service.limits.governor import Admission, Governor
from router_service.limits.model import Estimate, Level, Limit, Metric
from router_service.limits.periods import Period, PeriodUnit
from router_service.limits.plan import LimitsPlan
from router_service.limits.redis_store import RedisLimitStore

USD = 1_000_000_000
CALLERS = 300
REPLICAS = 3


async def burst(
    url: str, limits: tuple[Limit, ...], estimate_of: object, settle_of: object
) -> dict[str, int]:
    prefix = f"t-{uuid.uuid4().hex[:8]}:{{limits}}:"
    stores = [RedisLimitStore.from_url(url, prefix=prefix, timeout_s=10.0) for _ in range(REPLICAS)]
    # Frozen at one instant: every caller falls in the same minute, whatever the box's load.
    now = float(int(time.time()))
    governors = [Governor(LimitsPlan(limits), s, clock=lambda: now) for s in stores]
    rng = random.Random(7)
    totals = {"admitted": 0, "refused": 0, "spent": 0, "tokens": 0, "excess": 0}
    caller = Identity(key_id="k_burst", team="search")

    async def one(i: int) -> None:
        estimate: Estimate = estimate_of(rng)  # type: ignore[operator]
        try:
            admission: Admission = await governors[i % REPLICAS].admit(caller, estimate)
        except LimitExceededError:
            totals["refused"] += 1
            return
        totals["admitted"] += 1
        await asyncio.sleep(rng.random() * 0.01)
        outcome, cost, tokens = settle_of(rng, estimate)  # type: ignore[operator]
        if outcome == "release":
            await admission.release()
            return
        await admission.settle(cost, tokens)
        totals["spent"] += cost
        totals["tokens"] += tokens
        totals["excess"] += max(0, cost - estimate.cost_nanos)

    try:
        await asyncio.gather(*(one(i) for i in range(CALLERS)))
    finally:
        for s in stores:
            await s.close()
    return totals


async def test_concurrent_replicas_never_overspend_a_team_budget(redis_server: str) -> None:
    budget = Limit(Level.TEAM, Metric.COST, USD, Period(PeriodUnit.MONTH, "Europe/Berlin"))

    def estimate(rng: random.Random) -> Estimate:
        return Estimate(cost_nanos=rng.randint(5_000_000, 20_000_000), tokens=100)

    def settle(rng: random.Random, est: Estimate) -> tuple[str, int, int]:
        roll = rng.random()
        if roll < 0.2:
            return "release", 0, 0  # failed or cancelled midway
        if roll < 0.3:
            return "settle", est.cost_nanos + rng.randint(1, 1_000_000), 100  # the estimate was low
        return "settle", rng.randint(0, est.cost_nanos), 100

    totals = await burst(redis_server, (budget,), estimate, settle)
    # Worst-case asks of 5-20 M nano-USD from 300 callers (~3.75 USD asked): many refused.
    assert totals["refused"] > 0 and totals["admitted"] > 0
    assert totals["spent"] <= USD + totals["excess"]


async def test_concurrent_replicas_admit_at_most_the_tokens_per_minute(redis_server: str) -> None:
    tpm = Limit(Level.KEY, Metric.TOKENS, 50_000, Period(PeriodUnit.MINUTE))

    def estimate(rng: random.Random) -> Estimate:
        return Estimate(cost_nanos=0, tokens=rng.randint(100, 600))

    def settle(rng: random.Random, est: Estimate) -> tuple[str, int, int]:
        return "settle", 0, est.tokens  # streams report their real tokens: here exactly the ask

    totals = await burst(redis_server, (tpm,), estimate, settle)
    assert totals["refused"] > 0
    # Exact: every admitted token fits, and a refused caller could not have fit (> 600 left
    # would have admitted the smallest ask): admitted TPM within one request of the limit.
    assert 50_000 - 600 < totals["tokens"] <= 50_000
