"""EventQueue: the bounded FIFO between publish() and the sender task."""

from __future__ import annotations

import asyncio
import time

from router_service.telemetry.event_queue import EventQueue


def test_put_refuses_when_full_and_take_keeps_order() -> None:
    queue: EventQueue[int] = EventQueue(maxsize=3)

    assert [queue.put(i) for i in range(4)] == [True, True, True, False]
    assert queue.take(2) == [0, 1]
    assert queue.put(9)
    assert queue.take_all() == [2, 9]
    assert not queue and queue.take(5) == []


async def test_wait_returns_once_an_item_arrives() -> None:
    queue: EventQueue[int] = EventQueue(maxsize=10)
    waiting = asyncio.create_task(queue.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()

    queue.put(1)
    await asyncio.wait_for(waiting, 1.0)
    assert len(queue) == 1  # waiting takes nothing out


async def test_wait_for_a_batch_ends_when_full_or_at_the_deadline() -> None:
    queue: EventQueue[int] = EventQueue(maxsize=10)
    queue.put(0)
    full = asyncio.create_task(queue.wait(at_least=3, max_wait_s=10.0))
    queue.put(1)
    await asyncio.sleep(0.01)
    assert not full.done()  # two of three
    queue.put(2)
    await asyncio.wait_for(full, 1.0)

    started = time.monotonic()
    await queue.wait(at_least=5, max_wait_s=0.05)  # only three: the deadline ends it
    assert 0.04 < time.monotonic() - started < 1.0


async def test_wake_ends_the_current_wait_or_else_the_next_one() -> None:
    queue: EventQueue[int] = EventQueue(maxsize=10)
    waiting = asyncio.create_task(queue.wait(max_wait_s=10.0))
    await asyncio.sleep(0.01)
    queue.wake()
    await asyncio.wait_for(waiting, 1.0)

    queue.wake()  # nobody waits: the next wait returns at once, the one after that waits again
    await asyncio.wait_for(queue.wait(), 1.0)
    started = time.monotonic()
    await queue.wait(max_wait_s=0.05)
    assert time.monotonic() - started >= 0.04


def test_put_and_wake_work_before_any_event_loop_runs() -> None:
    queue: EventQueue[int] = EventQueue(maxsize=2)  # publish() may run before start()
    queue.wake()
    assert queue.put(1)
