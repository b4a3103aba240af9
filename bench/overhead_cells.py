"""The overhead bench's cells: a target under one load shape, measured interleaved with the other
targets in rounds, and summarised (bench/overhead.py)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from bench.load import Call, Load, Sample, closed_loop, open_loop, percentile_ms

CELL_TIMEOUT_S = 300.0  # per target and load shape, warm-up included

ClientFactory = Callable[[], AbstractAsyncContextManager[Call]]


@dataclass(frozen=True)
class Params:
    requests_c1: int
    requests_c32: int
    warmup: int
    open_loop_s: float  # per open-loop target, split over the rounds
    rounds: int  # every target measured once per round, interleaved
    concurrencies: tuple[int, ...] = (1, 32)

    def requests_at(self, concurrency: int) -> int:
        return self.requests_c1 if concurrency == 1 else self.requests_c32


@dataclass
class CellResult:
    """One measured cell: a target under one load shape."""

    target: str
    mode: str  # "closed" | "open"
    concurrency: int  # closed: workers; open: the most requests that were in flight at once
    offered_rps: float | None  # open loop only
    requests: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    rps: float
    elapsed_s: float
    first_error: str = ""
    round_rps: list[float] = field(default_factory=list)  # req/s of each interleaved round


def summarize(target: str, mode: str, sample: Sample, offered_rps: float | None = None) -> CellResult:
    lat = sorted(sample.latencies_ns)
    elapsed_s = sample.elapsed_ns / 1e9
    return CellResult(
        target=target,
        mode=mode,
        concurrency=sample.max_in_flight,
        offered_rps=offered_rps,
        requests=len(lat) + sample.errors,
        errors=sample.errors,
        p50_ms=percentile_ms(lat, 0.50),
        p90_ms=percentile_ms(lat, 0.90),
        p99_ms=percentile_ms(lat, 0.99),
        max_ms=lat[-1] / 1e6 if lat else math.nan,
        mean_ms=sum(lat) / len(lat) / 1e6 if lat else math.nan,
        rps=len(lat) / elapsed_s if elapsed_s else 0.0,
        elapsed_s=elapsed_s,
        first_error=sample.first_error,
        round_rps=[round(rps, 1) for rps in sample.round_rps],
    )


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal non-negative counts."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def run_interleaved(
    targets: dict[str, ClientFactory], loads: list[Load], warmup: Load
) -> dict[str, Sample]:
    """Opens every target's client, warms each up, then applies `loads` round by round, every
    target once per round in a rotating order, so that a burst of noise on the shared machine
    lands on all of them alike instead of on whichever cell was running."""
    async with contextlib.AsyncExitStack() as stack:
        calls = {name: await stack.enter_async_context(factory()) for name, factory in targets.items()}
        for call in calls.values():
            await warmup(call)
        samples = {name: Sample() for name in calls}
        names = list(calls)
        for i, load in enumerate(loads):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].merge(await load(calls[name]))
    return samples


async def run_closed(targets: dict[str, ClientFactory], concurrency: int, params: Params) -> list[CellResult]:
    total = params.requests_at(concurrency)
    progress(f"  closed loop c={concurrency}: {len(targets)} targets x {total} req, {params.rounds} rounds")

    def load(n: int) -> Load:
        return lambda call: closed_loop(call, concurrency, n)

    loads = [load(n) for n in split(total, params.rounds) if n]
    async with asyncio.timeout(CELL_TIMEOUT_S * len(targets)):
        samples = await run_interleaved(targets, loads, load(params.warmup))
    return [summarize(name, "closed", sample) for name, sample in samples.items()]


async def run_open(targets: dict[str, ClientFactory], rate: float, params: Params) -> list[CellResult]:
    progress(f"  open loop {' vs '.join(targets)}: {rate:.0f} req/s for {params.open_loop_s:g}s each")
    seconds = params.open_loop_s / params.rounds

    async def load(call: Call) -> Sample:
        return await open_loop(call, rate, seconds)

    async def warmup(call: Call) -> Sample:
        return await closed_loop(call, max(params.concurrencies), params.warmup)

    async with asyncio.timeout(CELL_TIMEOUT_S * len(targets)):
        samples = await run_interleaved(targets, [load] * params.rounds, warmup)
    return [summarize(name, "open", sample, offered_rps=rate) for name, sample in samples.items()]


def find(cells: list[CellResult], target: str, concurrency: int | None = None) -> CellResult:
    for cell in cells:
        if cell.target == target and (concurrency is None or cell.concurrency == concurrency):
            return cell
    raise KeyError((target, concurrency))
