"""The Redis store's pipelining: calls of one event-loop turn go out as one pipeline, each still
its own atomic script (the same answers as one by one), and scripts the server lost (a restart,
SCRIPT FLUSH) are loaded again without failing the calls. Real redis-server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from router_service.limits.model import Check
from router_service.limits.redis_store import RedisLimitStore

T0 = float(int(time.time()))


def check(counter: str, limit: int, ask: int) -> Check:
    return Check(counter, "u", -1, limit, ask, T0 + 86_400)


@pytest.fixture
async def store(redis_server: str) -> AsyncIterator[RedisLimitStore]:
    s = RedisLimitStore.from_url(redis_server, prefix=f"t-{uuid.uuid4().hex[:8]}:{{limits}}:", timeout_s=5.0)
    yield s
    await s.close()


async def test_concurrent_reserves_of_one_turn_share_a_pipeline_and_stay_exact(
    store: RedisLimitStore, redis_server: str
) -> None:
    client = aioredis.Redis.from_url(redis_server)
    try:
        before = int((await client.info("stats"))["total_connections_received"])
        # 40 callers ask for 10 each of a limit of 250: exactly 25 admitted, whatever the batching.
        outcomes = await asyncio.gather(
            *(store.reserve(f"r{i}", [check("cost:team:t", 250, 10)], T0, T0 + 60) for i in range(40))
        )
        after = int((await client.info("stats"))["total_connections_received"])
    finally:
        await client.aclose()
    assert sum(o.admitted for o in outcomes) == 25
    assert [o.admitted for o in outcomes] == [True] * 25 + [False] * 15  # in the order they were asked
    assert await store.read("cost:team:t", -1, T0) == (0, 250)
    # One pipeline on one connection, not one pooled connection per concurrent caller.
    assert after - before <= 2


async def test_scripts_the_server_lost_are_loaded_again(store: RedisLimitStore, redis_server: str) -> None:
    assert (await store.reserve("a", [check("cost:team:t", 100, 10)], T0, T0 + 60)).admitted
    client = aioredis.Redis.from_url(redis_server)
    try:
        await client.script_flush()
    finally:
        await client.aclose()
    outcomes = await asyncio.gather(
        store.reserve("b", [check("cost:team:t", 100, 10)], T0, T0 + 60),
        store.reserve("c", [check("cost:team:t", 100, 10)], T0, T0 + 60),
    )
    assert all(o.admitted for o in outcomes)
    assert await store.read("cost:team:t", -1, T0) == (0, 30)
