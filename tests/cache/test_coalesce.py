"""The coalescer alone: one producer per key at a time; a leader's failure or cancellation sends
followers to their own producers (never the leader's error); a follower's cancellation leaves the
leader alone; the in-flight table empties."""

from __future__ import annotations

import asyncio

import pytest

from router_service.cache.coalesce import Coalescer


class UpstreamError(Exception):
    pass


async def _until(condition: object, turns: int = 200) -> None:
    for _ in range(turns):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_followers_of_a_failed_leader_run_their_own_producers() -> None:
    c: Coalescer[str] = Coalescer()
    release = asyncio.Event()
    own_calls: list[int] = []

    async def failing() -> str:
        await release.wait()
        raise UpstreamError("leader's upstream failed")

    def own(i: int):  # type: ignore[no-untyped-def]
        async def run() -> str:
            own_calls.append(i)
            return f"own {i}"

        return run

    leader = asyncio.create_task(c.run("k", failing))
    await _until(lambda: c.inflight == 1)
    followers = [asyncio.create_task(c.run("k", own(i))) for i in range(3)]
    await asyncio.sleep(0)
    assert own_calls == []  # waiting on the leader
    release.set()
    with pytest.raises(UpstreamError):
        await leader
    assert sorted(await asyncio.gather(*followers)) == [("own 0", False), ("own 1", False), ("own 2", False)]
    assert c.inflight == 0


async def test_a_cancelled_leader_sends_followers_to_their_own_call() -> None:
    c: Coalescer[str] = Coalescer()
    hang = asyncio.Event()

    async def hung() -> str:
        await hang.wait()
        return "never"

    async def own() -> str:
        return "own"

    leader = asyncio.create_task(c.run("k", hung))
    await _until(lambda: c.inflight == 1)
    follower = asyncio.create_task(c.run("k", own))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert await follower == ("own", False)


async def test_a_cancelled_follower_leaves_the_leader_and_other_followers_alone() -> None:
    c: Coalescer[str] = Coalescer()
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "answer"

    leader = asyncio.create_task(c.run("k", slow))
    await _until(lambda: c.inflight == 1)
    quitter = asyncio.create_task(c.run("k", slow))
    stayer = asyncio.create_task(c.run("k", slow))
    await asyncio.sleep(0)
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    release.set()
    assert await leader == ("answer", False)
    assert await stayer == ("answer", True)


async def test_distinct_keys_do_not_wait_for_each_other() -> None:
    c: Coalescer[str] = Coalescer()
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    async def quick() -> str:
        return "quick"

    blocked = asyncio.create_task(c.run("a", slow))
    await _until(lambda: c.inflight == 1)
    assert await c.run("b", quick) == ("quick", False)
    release.set()
    assert await blocked == ("slow", False)


async def test_a_key_runs_again_after_its_call_ended() -> None:
    c: Coalescer[int] = Coalescer()
    calls = 0

    async def count() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await c.run("k", count) == (1, False)
    assert await c.run("k", count) == (2, False)
