"""ManualClock: virtual time that sleeps, times out and orders timers exactly, without sleeping;
SystemClock: the real functions."""

from __future__ import annotations

import asyncio
import time

import pytest

from router_service.clock import SYSTEM_CLOCK, ManualClock


async def test_sleep_wakes_exactly_when_time_reaches_it() -> None:
    clock = ManualClock(start=10.0)
    task = asyncio.create_task(clock.sleep(0.5))
    await clock.advance(0.49)
    assert not task.done()
    await clock.advance(0.01)
    assert task.done() and clock.monotonic() == pytest.approx(10.5)


async def test_timers_fire_in_deadline_order_each_at_its_own_time() -> None:
    clock = ManualClock(start=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("late", 0.3), ("early", 0.1), ("tie", 0.1))]
    await clock.advance(1.0)
    assert woke == [("early", 0.1), ("tie", 0.1), ("late", 0.3)]  # ties in the order they were set
    assert all(t.done() for t in tasks) and clock.monotonic() == 1.0


async def test_timeout_raises_at_its_deadline_and_not_before() -> None:
    clock = ManualClock(start=0.0)

    async def hang() -> None:
        async with clock.timeout(0.2):
            await asyncio.Event().wait()

    task = asyncio.create_task(hang())
    await clock.advance(0.19)
    assert not task.done()
    await clock.advance(0.01)
    assert isinstance(task.exception(), TimeoutError)


async def test_a_block_that_ends_in_time_is_not_timed_out_later() -> None:
    clock = ManualClock(start=0.0)

    async def quick() -> str:
        async with clock.timeout(0.2):
            await clock.sleep(0.1)
        await clock.sleep(0.5)  # past the timeout's deadline, outside its block
        return "done"

    assert await clock.run(quick()) == "done"
    assert clock.monotonic() == pytest.approx(0.6) and clock.pending_timers == 0


async def test_timeout_of_zero_expires_at_once_like_asyncio() -> None:
    clock = ManualClock()
    with pytest.raises(TimeoutError):
        async with clock.timeout(0):
            await asyncio.Event().wait()


async def test_cancellation_from_outside_is_not_turned_into_a_timeout() -> None:
    clock = ManualClock()

    async def hang() -> None:
        async with clock.timeout(5):
            await asyncio.Event().wait()

    task = asyncio.create_task(hang())
    await clock.settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending_timers == 0


async def test_run_jumps_to_each_timer_the_awaitable_waits_for_and_no_further() -> None:
    clock = ManualClock(start=0.0)
    background = asyncio.create_task(clock.sleep(10.0))

    async def work() -> float:
        await clock.sleep(0.25)
        async with clock.timeout(None):
            await clock.sleep(0.5)
        return clock.monotonic()

    assert await clock.run(work()) == 0.75
    assert clock.monotonic() == 0.75 and not background.done()  # later timers are left alone
    background.cancel()


async def test_run_refuses_to_wait_for_what_no_timer_will_wake() -> None:
    clock = ManualClock()
    with pytest.raises(RuntimeError, match="no timer"):
        await clock.run(asyncio.Event().wait())


async def test_wall_time_moves_with_monotonic_time() -> None:
    clock = ManualClock(start=5.0, wall_offset=1_000.0)
    assert clock.time() == 1_005.0
    await clock.advance(2.5)
    assert (clock.monotonic(), clock.time()) == (7.5, 1_007.5)
    with pytest.raises(ValueError):
        await clock.advance(-1)


async def test_system_clock_is_the_real_clocks() -> None:
    before = time.monotonic()
    assert before <= SYSTEM_CLOCK.monotonic() <= time.monotonic()
    assert abs(SYSTEM_CLOCK.time() - time.time()) < 60
    with pytest.raises(TimeoutError):
        async with SYSTEM_CLOCK.timeout(0):
            await asyncio.Event().wait()
