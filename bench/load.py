"""Load generators for the benchmarks: a closed loop (N workers back to back) and an open loop (a
fixed send rate, latency counted from the scheduled send), over any async `call()`."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Call = Callable[[], Awaitable[None]]  # one request; raises on failure


@dataclass
class Sample:
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    elapsed_ns: int = 0
    max_in_flight: int = 0
    round_rps: list[float] = field(default_factory=list)  # one per merged round

    def merge(self, other: Sample) -> None:
        """Adds a later round: latencies and errors pool, active time adds up."""
        if other.elapsed_ns:
            self.round_rps.append(len(other.latencies_ns) / (other.elapsed_ns / 1e9))
        self.latencies_ns += other.latencies_ns
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
        self.elapsed_ns += other.elapsed_ns
        self.max_in_flight = max(self.max_in_flight, other.max_in_flight)

    def fail(self, exc: BaseException) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = f"{type(exc).__name__}: {exc}"[:300]


Load = Callable[[Call], Awaitable[Sample]]  # one measured pass of some load shape over a target


async def closed_loop(call: Call, concurrency: int, requests: int) -> Sample:
    """`concurrency` workers issue `requests` calls back to back; each latency is one call."""
    sample = Sample(max_in_flight=concurrency)
    remaining = requests
    clock = time.perf_counter_ns

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = clock()
            try:
                await call()
            except Exception as exc:
                sample.fail(exc)
            else:
                sample.latencies_ns.append(clock() - started)

    started = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sample.elapsed_ns = clock() - started
    return sample


async def open_loop(call: Call, rate: float, duration_s: float) -> Sample:
    """Sends at a fixed `rate` whatever the responses do; latency counts from the scheduled send."""
    sample = Sample()
    clock = time.perf_counter_ns
    interval_ns = 1e9 / rate
    in_flight: set[asyncio.Task[None]] = set()

    async def one(due_ns: int) -> None:
        try:
            await call()
        except Exception as exc:
            sample.fail(exc)
        else:
            sample.latencies_ns.append(clock() - due_ns)

    started = clock()
    for i in range(max(1, int(rate * duration_s))):
        due = started + int(i * interval_ns)
        delay_ns = due - clock()
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / 1e9)
        task = asyncio.create_task(one(due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        sample.max_in_flight = max(sample.max_in_flight, len(in_flight))
    await asyncio.gather(*in_flight)
    sample.elapsed_ns = clock() - started
    return sample


def percentile_ms(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in milliseconds (nan when empty)."""
    if not sorted_ns:
        return math.nan
    rank = min(len(sorted_ns) - 1, max(0, math.ceil(q * len(sorted_ns)) - 1))
    return sorted_ns[rank] / 1e6
