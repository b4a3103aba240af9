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

from router_service.limits.model import Check, Settlement
from router_service.limits.redis_store import RedisLimitStore
from router_service.limits.store import ReserveOutcome, StoreUnavailableError
from router_service.redis_client import redis_from_url

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


async def evalsha_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_settle_rides_along_with_the_next_reserve(store: RedisLimitStore, redis_server: str) -> None:
    client = aioredis.Redis.from_url(redis_server)
    try:
        assert (await store.reserve("a", [check("cost:team:t", 100, 10)], T0, T0 + 60)).admitted
        before = await evalsha_calls(client)
        settling = asyncio.ensure_future(
            store.settle("a", [Settlement("cost:team:t", "u", 10, 7, T0 + 86_400)], T0)
        )
        await asyncio.sleep(0)  # the settle is queued: not urgent, it waits for company
        assert (await store.reserve("b", [check("cost:team:t", 100, 10)], T0, T0 + 60)).admitted
        assert await settling  # its reservation was live
        assert await evalsha_calls(client) - before == 1  # one script call carried both
    finally:
        await client.aclose()
    assert await store.read("cost:team:t", -1, T0) == (7, 10)


async def test_one_failing_operation_fails_alone(store: RedisLimitStore, redis_server: str) -> None:
    client = aioredis.Redis.from_url(redis_server)
    try:
        await client.set(store_key(store, "cost:team:broken"), "not a hash")  # WRONGTYPE for the script
    finally:
        await client.aclose()
    broken, fine = await asyncio.gather(
        store.reserve("x", [check("cost:team:broken", 100, 10)], T0, T0 + 60),
        store.reserve("y", [check("cost:team:t", 100, 10)], T0, T0 + 60),
        return_exceptions=True,
    )
    assert isinstance(broken, StoreUnavailableError)
    assert isinstance(fine, ReserveOutcome) and fine.admitted
    assert await store.read("cost:team:t", -1, T0) == (0, 10)


async def test_settles_beyond_the_bound_fail_at_once_never_silently(redis_server: str) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}:{{limits}}:"
    client = redis_from_url(redis_server, timeout_s=5.0)
    bounded = RedisLimitStore(client, prefix=prefix, max_pending_settles=1)
    held = [check("cost:team:t", 100, 10)]
    settle = [Settlement("cost:team:t", "u", 10, 10, T0 + 86_400)]
    try:
        for rid in ("a", "b"):
            assert (await bounded.reserve(rid, held, T0, T0 + 60)).admitted
        first, second = await asyncio.gather(
            bounded.settle("a", settle, T0), bounded.settle("b", settle, T0), return_exceptions=True
        )
        assert first is True
        assert isinstance(second, StoreUnavailableError)  # the governor counts it as a lost settle
        assert await bounded.read("cost:team:t", -1, T0) == (10, 10)  # b's hold waits for its TTL
    finally:
        await bounded.close()


def store_key(store: RedisLimitStore, counter: str) -> str:
    return f"{store.prefix}c:{counter}"


async def test_reserves_asked_while_a_call_is_out_go_together_in_the_next(
    store: RedisLimitStore, redis_server: str
) -> None:
    client = aioredis.Redis.from_url(redis_server)
    try:
        assert (await store.reserve("warm", [check("cost:team:t", 1000, 1)], T0, T0 + 60)).admitted
        before = await evalsha_calls(client)
        await client.client_pause(300)  # holds the first call in flight
        first = asyncio.ensure_future(store.reserve("a", [check("cost:team:t", 1000, 10)], T0, T0 + 60))
        later = []
        for i in range(10):  # each asked on a loop turn of its own, while the first is out
            await asyncio.sleep(0.005)
            later.append(
                asyncio.ensure_future(store.reserve(f"b{i}", [check("cost:team:t", 1000, 10)], T0, T0 + 60))
            )
        outcomes = await asyncio.gather(first, *later)
        assert await evalsha_calls(client) - before == 2
    finally:
        await client.aclose()
    assert all(o.admitted for o in outcomes)
    assert [o.currents for o in outcomes] == [(1 + 10 * i,) for i in range(11)]  # in the order asked
    assert await store.read("cost:team:t", -1, T0) == (0, 111)


async def test_a_call_that_times_out_fails_and_the_next_one_works(redis_server: str) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}:{{limits}}:"
    impatient = RedisLimitStore.from_url(redis_server, prefix=prefix, timeout_s=0.2)
    client = aioredis.Redis.from_url(redis_server)
    try:
        assert (await impatient.reserve("warm", [check("cost:team:t", 1000, 1)], T0, T0 + 60)).admitted
        await client.client_pause(600)
        with pytest.raises(StoreUnavailableError, match="Timeout"):
            await impatient.reserve("slow", [check("cost:team:t", 1000, 10)], T0, T0 + 60)
        await asyncio.sleep(0.6)  # the pause is over
        # A new connection: the first one was closed, so the late answer cannot be taken for this.
        outcome = await impatient.reserve("next", [check("cost:team:t", 1000, 100)], T0, T0 + 60)
        assert outcome.admitted and outcome.currents[0] in (1, 11)
    finally:
        await client.aclose()
        await impatient.close()


async def test_the_timeout_counts_from_when_a_call_was_asked_not_when_it_was_sent(redis_server: str) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}:{{limits}}:"
    impatient = RedisLimitStore.from_url(redis_server, prefix=prefix, timeout_s=0.3)
    client = aioredis.Redis.from_url(redis_server)
    try:
        assert (await impatient.reserve("warm", [check("cost:team:t", 1000, 1)], T0, T0 + 60)).admitted
        await client.client_pause(500)
        first = asyncio.ensure_future(impatient.reserve("a", [check("cost:team:t", 1000, 10)], T0, T0 + 60))
        await asyncio.sleep(0.02)
        # Asked while `first` is out: it waits behind it, and that wait is part of its timeout
        # (sent only when `first` failed, with a timeout of its own, it would get an answer once
        # the pause is over, 0.5 s after it was asked).
        second = asyncio.ensure_future(impatient.reserve("b", [check("cost:team:t", 1000, 10)], T0, T0 + 60))
        outcomes = await asyncio.gather(first, second, return_exceptions=True)
        assert all(isinstance(o, StoreUnavailableError) for o in outcomes), outcomes
        await asyncio.sleep(0.5)  # the pause is over
        assert (await impatient.reserve("c", [check("cost:team:t", 1000, 100)], T0, T0 + 60)).admitted
    finally:
        await client.aclose()
        await impatient.close()


async def test_reserves_past_one_full_batch_go_next_not_after_the_settle_linger(redis_server: str) -> None:
    # 300 reserves in one turn: 256 in the first call, the other 44 (callers waiting) in the next,
    # not when the settles' linger (30 s here) runs out.
    store = RedisLimitStore(
        redis_from_url(redis_server, timeout_s=60.0),
        prefix=f"r-{uuid.uuid4().hex[:8]}:{{limits}}:",
        settle_linger_s=30.0,
    )
    tasks = [
        asyncio.ensure_future(store.reserve(f"r{i}", [check("cost:t", 10**9, 1)], T0, T0 + 60))
        for i in range(300)
    ]
    try:
        _, pending = await asyncio.wait(tasks, timeout=3.0)
        assert not pending, f"{len(pending)} reserves still waiting after 3 s"
    finally:
        for task in tasks:
            task.cancel()
        await store.close()


async def test_an_op_asked_as_the_last_answer_lands_is_sent_before_close(redis_server: str) -> None:
    # A callback of the last answer asks one more operation (as a settle task would): close()
    # drains it too instead of cancelling the sender under it.
    store = RedisLimitStore(
        redis_from_url(redis_server, timeout_s=5.0), prefix=f"d-{uuid.uuid4().hex[:8]}:{{limits}}:"
    )
    batcher = store._batcher
    asked: list[asyncio.Future[object]] = []
    first = batcher.call('["x","cost:t","1",0,"u"]')
    first.add_done_callback(lambda _: asked.append(batcher.call('["x","cost:t","2",0,"u"]')))
    await store.close()
    assert asked and asked[0].done() and asked[0].exception() is None


async def test_an_op_asked_after_close_fails_at_once(redis_server: str) -> None:
    store = RedisLimitStore(
        redis_from_url(redis_server, timeout_s=5.0), prefix=f"c-{uuid.uuid4().hex[:8]}:{{limits}}:"
    )
    await store.reserve("warm", [check("cost:t", 10**9, 1)], T0, T0 + 60)
    await store.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await asyncio.wait_for(store.reserve("late", [check("cost:t", 10**9, 1)], T0, T0 + 60), 3.0)
