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
