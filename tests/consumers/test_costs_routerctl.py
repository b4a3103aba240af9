"""`routerctl costs --team X --window month` (and --key, --customer) as a real process, reading
what a real costs consumer published to the broker: one caller's exact spend per model, the total
row its own dimension, in the calendar windows budgets count."""

from __future__ import annotations

import asyncio
import sys
import time
from decimal import Decimal
from pathlib import Path

from router_contract.readers.costs import fleet_totals
from router_contract.windows import Grain
from tests.consumers import helpers
from tests.consumers.conftest import Setup, StartRunner
from tests.telemetry.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]


async def _routerctl(setup: Setup, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router_service.routerctl", "--timeout", "20", "costs",
        "--bootstrap", setup.bootstrap, "--topic", setup.snapshot_topic, *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _rows(table: str) -> dict[str, tuple[int, int, int, int]]:
    """{model or "total": (requests, cost nano-USD, input tokens, output tokens)}."""
    rows = {}
    for line in table.splitlines()[2:]:
        label, requests, cost, tokens_in, tokens_out, *_ = line.split()
        nanos = int(Decimal(cost).scaleb(9))
        rows[label] = (int(requests), nanos, int(tokens_in), int(tokens_out))
    return rows


def _expected(truth: dict[str, dict[str, int]], dimension: str) -> dict[str, tuple[int, int, int, int]]:
    def row(sums: dict[str, int]) -> tuple[int, int, int, int]:
        return (sums["requests"], sums["cost_nanos_usd"], sums["input_tokens"], sums["output_tokens"])

    prefix = dimension + ",model="
    out = {key[len(prefix) :]: row(sums) for key, sums in truth.items() if key.startswith(prefix)}
    return {**out, "total": row(truth[dimension])}


async def test_one_callers_spend_per_model_in_the_month_week_and_day(
    costs_setup: Setup, start_runner: StartRunner
) -> None:
    setup = costs_setup
    now = time.time()
    events = helpers.mixed_events(240, seed=14, now_s=now)
    truth = helpers.GroundTruth.of(events).totals
    written = await helpers.publish(setup.bootstrap, setup.input_topic, events)
    running = start_runner("costs", setup.config())
    total = sum(written.values())
    await eventually(
        lambda: running.metric("llmrouter_consumer_records_total") == total, 60, "every record read"
    )
    await running.stop()  # publishes what it holds
    latest = await helpers.read_latest(setup.bootstrap, setup.snapshot_topic)
    merged = fleet_totals(latest, "month", Grain("month").start(now))
    assert merged["total=all"].requests == truth["total=all"]["requests"]

    for caller, dimension, window in [
        (("--team", "search"), "team=search", "month"),
        (("--key", "key-2"), "api_key=key-2", "week"),
        (("--customer", "acme"), "customer=acme", "day"),
    ]:
        code, out, err = await _routerctl(setup, *caller, "--window", window)
        assert code == 0, err
        assert out.splitlines()[0].startswith(f"{dimension}: current {window} (UTC) window")
        expected = _expected(truth, dimension)
        assert len(expected) > 2  # several models, and the total
        assert _rows(out) == expected, window

    code, out, err = await _routerctl(
        setup, "--team", "search", "--window", "minute", "--time-zone", "Asia/Kolkata"
    )
    assert code == 1 and "minute@Asia/Kolkata" in err
