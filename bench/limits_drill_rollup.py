"""The costs rollups as the limits drill reads them back from the snapshot topic: sampled during
the burst (the rollup keeps only two minutes), and once they count every answered call."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench.limits_drill_params import PARTITIONS
from bench.limits_drill_report import team_totals
from bench.snapshot_topic import read_snapshot_topic
from router_contract.windows import window_start


async def read_rollup(bootstrap: str, snapshot_topic: str) -> dict[str, Any]:
    return await read_snapshot_topic(bootstrap, snapshot_topic, PARTITIONS)


async def sample_minutes(
    bootstrap: str, snapshot_topic: str, team: str, into: dict[int, int], stop: asyncio.Event
) -> None:
    """The rollup keeps only the current and previous minute: read it every few seconds during
    the burst and keep each minute's tokens as last seen (a count only grows)."""
    while not stop.is_set():
        with contextlib.suppress(Exception):  # a read racing the consumer's start: try again
            latest = await read_rollup(bootstrap, snapshot_topic)
            now = int(time.time())
            for minute in (window_start(now, 60) - 60, window_start(now, 60)):
                totals = team_totals(latest, team, "minute", minute)
                if totals is not None:
                    into[minute] = max(into.get(minute, 0), totals.input_tokens + totals.output_tokens)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)


async def wait_for_rollup(
    bootstrap: str, snapshot_topic: str, want_requests: int, timeout_s: float
) -> dict[str, Any]:
    """The rollup once it counts every answered request of both teams (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    latest: dict[str, Any] = {}
    day = window_start(time.time(), 86400)
    while time.monotonic() < deadline:
        latest = await read_rollup(bootstrap, snapshot_topic)
        counted = sum(
            t.requests
            for team in ("budget", "tpm")
            if (t := team_totals(latest, team, "day", day)) is not None
        )
        if counted >= want_requests:
            return latest
        await asyncio.sleep(1.0)
    return latest
