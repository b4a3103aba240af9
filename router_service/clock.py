"""Time for the request path: one object to read the clock, sleep and bound a wait.

The engine and its helpers never call `time.monotonic()`, `asyncio.sleep` or `asyncio.timeout`
themselves; they ask the `Clock` they were given. Production uses `SYSTEM_CLOCK` (those same
functions, no wrapping cost). Tests use `ManualClock`, whose time moves only when the test moves
it, so hedge delays, attempt timeouts, deadlines, backoffs and cool-downs are exact and a test
never sleeps.

`ManualClock` drives asyncio on virtual time: its sleeps and timeouts are timers on its own heap,
and `advance`/`run` fire them in deadline order, letting the event loop run everything runnable
between two timers (`settle`). That is deterministic as long as nothing under test waits on real
I/O or a real timer (the in-process fake adapters never do).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol, TypeVar

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]

T = TypeVar("T")


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: durations, deadlines, live-state times."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch: only for timestamps that leave the process."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        """`async with clock.timeout(s):` raises TimeoutError when the block outlives `s` seconds
        (None: no limit), like `asyncio.timeout(delay)`."""
        ...


class SystemClock:
    """The real clocks and asyncio's own timers."""

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)
    sleep = staticmethod(asyncio.sleep)
    timeout = staticmethod(asyncio.timeout)


SYSTEM_CLOCK: Clock = SystemClock()

# Event-loop turns `ManualClock.settle` yields. A turn runs every callback that was ready when it
# started; the longest chain in the engine (a timeout cancelling an attempt, the fallback's
# attempt, `asyncio.wait` waking the request) is about a dozen turns, so this leaves a wide margin.
_SETTLE_TURNS = 64


class _Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Virtual time for tests: starts at `start`, moves only through `advance` and `run`. The
    default start is far from any real `time.monotonic()` (31 years of uptime), so code that reads
    the system clock instead of this one gets deadlines that are wildly wrong, not subtly so."""

    def __init__(self, start: float = 1e9, wall_offset: float = 7e8) -> None:
        self._now = start
        self._wall_offset = wall_offset
        self._timers: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()  # ties fire in the order they were set, as asyncio's do

    # --- Clock --------------------------------------------------------------------------------

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)  # asyncio.sleep(0) yields once; so does this
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self._call_at(self._now + seconds, lambda: _wake(future))
        try:
            await future
        finally:
            timer.cancel()

    def timeout(self, seconds: float | None) -> AbstractAsyncContextManager[object]:
        return _ManualTimeout(self, seconds)

    # --- driving time -------------------------------------------------------------------------

    @property
    def pending_timers(self) -> int:
        """Sleeps and timeouts still waiting for their time."""
        return sum(1 for _, _, timer in self._timers if not timer.cancelled)

    async def settle(self) -> None:
        """Let every task that can run without time passing run until it waits."""
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, firing each timer due on the way at its own time."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        target = self._now + seconds
        await self.settle()
        while (timer := self._pop_due(target)) is not None:
            self._now = max(self._now, timer.when)
            timer.callback()
            await self.settle()
        self._now = target
        await self.settle()

    def stall(self, seconds: float) -> None:
        """Move time forward without firing a timer, as an event loop blocked by a synchronous call
        (a long GC pause) for `seconds` does: timers that fell due fire late, together, at the next
        `advance` or `run`."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable`, jumping time to the next timer whenever everything waits on one.
        Timers after the awaitable is done are left alone (a detached hedge loser's timeout)."""
        task = asyncio.ensure_future(awaitable)
        while True:
            await self.settle()
            if task.done():
                return task.result()
            timer = self._pop_due(float("inf"))
            if timer is None:
                task.cancel()
                raise RuntimeError("the awaitable waits on something no timer of this clock will wake")
            self._now = max(self._now, timer.when)
            timer.callback()

    # --- internals ----------------------------------------------------------------------------

    def _call_at(self, when: float, callback: Callable[[], object]) -> _Timer:
        timer = _Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def _pop_due(self, until: float) -> _Timer | None:
        timers = self._timers
        while timers and timers[0][0] <= until:
            _, _, timer = heapq.heappop(timers)
            if not timer.cancelled:
                return timer
        return None


class _ManualTimeout:
    """`asyncio.timeout` whose expiry is a `ManualClock` timer: an `asyncio.Timeout` with no
    deadline of its own, told to expire now (`reschedule` to the loop's present) when the timer
    fires. Cancellation and the TimeoutError it turns into are asyncio's, unchanged."""

    __slots__ = ("_clock", "_inner", "_seconds", "_timer")

    def __init__(self, clock: ManualClock, seconds: float | None) -> None:
        self._clock = clock
        self._seconds = seconds
        self._inner = asyncio.timeout(None)
        self._timer: _Timer | None = None

    async def __aenter__(self) -> _ManualTimeout:
        inner = self._inner
        await inner.__aenter__()
        seconds = self._seconds
        if seconds is not None and seconds <= 0:
            _expire(inner)  # expired already, as asyncio's would be
        elif seconds is not None:
            self._timer = self._clock._call_at(self._clock.monotonic() + seconds, lambda: _expire(inner))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self._inner.__aexit__(exc_type, exc, tb)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _expire(timeout: asyncio.Timeout) -> None:
    timeout.reschedule(asyncio.get_running_loop().time())
