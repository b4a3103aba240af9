"""Concurrent identical misses share one upstream call (in this process).

The first caller of a key (the leader) runs its producer; callers of the same key that arrive
while it runs (followers) wait for its result instead of calling upstream themselves. Keys are
cache keys, so coalescing is per tenant like the entries.

If the leader fails or is cancelled (its caller went away), followers do not get its error: each
falls through to its own producer, exactly as if nothing had been coalesced. A follower whose own
caller goes away stops waiting without disturbing the leader. The leader runs its producer in its
caller's own task, so cancellation and context (deadline, trace) are the leader's, unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _LeaderFailed(Exception):
    """Set on the shared future when the leader did not produce: followers call their own."""


class Coalescer(Generic[T]):
    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def leader_of(self, key: str) -> asyncio.Future[T] | None:
        """The in-flight call of `key` to follow, if any (for callers that cannot hand `run` a
        producer, like a stream, whose result exists only once it has been relayed)."""
        return self._inflight.get(key)

    async def follow(self, leader: asyncio.Future[T]) -> T | None:
        """The leader's result; None if it failed (then make your own call)."""
        try:
            return await asyncio.shield(leader)
        except _LeaderFailed:
            return None

    def lead(self, key: str) -> Lead[T]:
        """Become the in-flight call of `key` (none may be running): settle the lead exactly once."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        return Lead(self._inflight, key, future)

    async def run(self, key: str, producer: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """(the result, whether it was another caller's). Raises only this caller's own errors."""
        shared = self._inflight.get(key)
        if shared is not None:
            try:
                return await asyncio.shield(shared), True
            except _LeaderFailed:
                return await producer(), False
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await producer()
        except BaseException:
            future.set_exception(_LeaderFailed())
            future.exception()  # retrieved: no "exception never retrieved" when nobody followed
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            del self._inflight[key]


class Lead(Generic[T]):
    """An in-flight call others may follow: `succeed` hands them its result, `fail` (also the
    effect of settling twice: only the first counts) sends each to its own call."""

    __slots__ = ("_future", "_inflight", "_key")

    def __init__(self, inflight: dict[str, asyncio.Future[T]], key: str, future: asyncio.Future[T]) -> None:
        self._inflight, self._key, self._future = inflight, key, future

    def succeed(self, result: T) -> None:
        if not self._future.done():
            self._future.set_result(result)
        self._release()

    def fail(self) -> None:
        if not self._future.done():
            self._future.set_exception(_LeaderFailed())
            self._future.exception()  # retrieved: no "exception never retrieved" when nobody followed
        self._release()

    def _release(self) -> None:
        if self._inflight.get(self._key) is self._future:
            del self._inflight[self._key]
