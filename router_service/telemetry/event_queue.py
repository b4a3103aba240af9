"""EventQueue: the bounded FIFO between `publish()` on the request path and the sender task.

Why not asyncio.Queue? Two reasons. The sender waits for a batch to fill (it lingers, see
publisher.py) without taking anything out, so that a lost producer can still be replaced before
those events are sent; asyncio.Queue cannot wait without taking. And `put` runs on the request
path for every event: here it is a length check and a deque append, and it resolves the
sender's waiter only when the sender is waiting for that many events, where asyncio.Queue also
keeps task-done bookkeeping and wakes a getter for every put.

Single consumer: one sender task waits at a time. Not thread-safe, like the rest of asyncio.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, TypeVar

T = TypeVar("T")


class EventQueue(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None  # the sender's, while it waits
        self._wanted = 1  # how many items the waiting sender needs before it is woken
        self._woken = False  # a wake() not consumed by a wait yet

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> bool:
        """Append an item; False (and nothing appended) when the queue is full. Never blocks."""
        items = self._items
        if len(items) >= self._maxsize:
            return False
        items.append(item)
        waiter = self._waiter
        if waiter is not None and len(items) >= self._wanted and not waiter.done():
            waiter.set_result(None)
        return True

    def wake(self) -> None:
        """End the sender's current wait, or else its next one, at once: to stop, or to replace
        its producer."""
        self._woken = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, at_least: int = 1, max_wait_s: float | None = None) -> None:
        """Until the queue holds `at_least` items, wake() is called, or `max_wait_s` seconds pass."""
        if self._woken:
            self._woken = False
            return
        if len(self._items) >= at_least:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._wanted = at_least
        timer = None if max_wait_s is None else loop.call_later(max_wait_s, _resolve, waiter)
        try:
            await waiter
        finally:
            self._waiter, self._wanted, self._woken = None, 1, False
            if timer is not None:
                timer.cancel()

    def take(self, limit: int) -> list[T]:
        """Remove and return up to `limit` items, oldest first."""
        items = self._items
        if len(items) <= limit:
            taken = list(items)
            items.clear()
        else:
            taken = [items.popleft() for _ in range(limit)]
        return taken

    def take_all(self) -> list[T]:
        return self.take(len(self._items))


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
