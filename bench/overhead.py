"""Router overhead benchmark: the router against a bare gRPC echo and a direct HTTP call, in one run.

    .venv/bin/python bench/overhead.py                   # full run (~1-2 min)
    .venv/bin/python bench/overhead.py --quick           # ~1/5 of the requests
    .venv/bin/python bench/overhead.py --router-config-extra 'telemetry: {...}'   # one more router row
    .venv/bin/python bench/overhead.py --door-only       # the OpenAI door vs gRPC, 20 short rounds
    .venv/bin/python bench/overhead.py --limits-only     # budgets + rate limits on vs off, 20 short rounds
    .venv/bin/python bench/overhead.py --baseline DIR    # + router/aiohttp[+events] from another tree

Every server runs in its own process on a free 127.0.0.1 port: a simulated provider (`router-service sim
--preset instant`), a bare grpc.aio echo service (bench/echo_server.py) and one router per variant
(`router-service serve --config <tmp yaml>`, one worker). The load generators run here, on asyncio (uvloop
when installed). Cells, each at concurrency 1 and 32 in closed loop:

- echo                 unary grpc.aio echo of a small message
- http/httpx           POST /v1/chat/completions to the sim, httpx.AsyncClient with its own transport
- http/aiohttp         the same through httpx over `httpx_aiohttp.AiohttpTransport`
- http/aiohttp-raw     the same with a raw aiohttp.ClientSession (reference)
- router/<transport>   `Complete` through the router to the same sim
- router/aiohttp+events            the same publishing its events to an embedded broker, each written
                                   to the spool before the call answers (events.durable, the default)
- router/aiohttp+events-volatile   the same with events.durable: false (the log's cost: the difference)
- door/aiohttp         the same request as POST /v1/chat/completions to the router's OpenAI-compatible
                       HTTP door (server.openai_http; a router of its own, otherwise router/aiohttp's
                       config), from a raw aiohttp session: the door's cost next to the gRPC path's
- router/aiohttp+limits[-redis]    (--limits-only) router/aiohttp with a global budget and global
                       requests/tokens/concurrency limits, every call reserving and settling three
                       counters: in the in-process store, or in a real redis-server on loopback (the
                       operations of one loop turn in one script call; a settle rides with the next
                       reserve, off the caller's path)

`http/httpx` and `http/aiohttp` are built by the router's own `make_http_client`, so they measure the
client the router uses. The targets of one load shape are measured interleaved, in rounds (default 5,
rotating order), so a burst of noise on the shared machine hits all of them alike; a cell's req/s is its
completed requests over its own active time. Then an open-loop run per router variant at half its
measured c=32 rate, against the direct call with the same transport at the same rate (latency counted
from the scheduled send time, so queueing is included). Derived rows are checked against the
"Performance budget" of DESIGN.md: PASS / MISS, or INVALID when a cell behind the number had errors
or an open-loop cell could not sustain the offered rate.

With --baseline DIR (a `git archive` of an older commit), router/aiohttp and router/aiohttp+events
also run from that tree as rows `<row>@base`, in the same rounds, with after/base rows
(bench/overhead_baseline.py).

The machine is shared and noisy: compare rows of one run, not runs. Writes bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as `python bench/overhead.py`: put the repository root, not bench/, first on the path, so
    # that `bench.*` imports resolve (and bench/consumers.py cannot shadow the consumers package).
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.overhead_args import mode_of, params_from, parse_args
from bench.overhead_baseline import after_vs_base_rows, base_variants, pairs_of, row_of
from bench.overhead_budget import TELEMETRY_COST, BudgetRow, derive, door_rows, limits_rows, telemetry_rows
from bench.overhead_cells import CellResult, Params, find, progress, run_closed, run_open
from bench.overhead_clients import direct_target
from bench.overhead_report import machine_info, print_report, write_json
from bench.overhead_stack import (
    Endpoints,
    closed_loop_targets,
    embedded_broker,
    embedded_redis,
    event_loop_runner,
    pin_routers,
    router_cpu_s,
    router_cpu_us,
    sigterm_as_exit,
    spawn_endpoints,
    start_and_wait,
)
from bench.overhead_variants import (
    DOOR,
    DOOR_VARIANT,
    FOCUSED_TARGETS,
    FULL,
    LIMITS,
    PLAIN,
    TELEMETRY,
    RouterVariant,
    auth_variant,
    door_variant,
    events_extra,
    limits_variants,
    router_variants,
)
from bench.servers import Fleet

FOCUSED_ROWS = {TELEMETRY: telemetry_rows, DOOR: door_rows, LIMITS: limits_rows}


@dataclass
class Measurement:
    closed: list[CellResult]
    opened: list[CellResult]
    cpu_us: dict[str, float]  # router process CPU per answered call, by variant
    cpu_us_ready: dict[str, float]  # the same from readiness on (startup left out)


async def measure(endpoints: Endpoints, params: Params, mode: str = FULL, pin: bool = False) -> Measurement:
    await start_and_wait(endpoints)
    ready_cpu = router_cpu_s(endpoints)
    if pin:
        pin_routers(endpoints)
    targets = closed_loop_targets(endpoints)
    closed: list[CellResult] = []
    opened: list[CellResult] = []
    if mode != FULL:
        # A baseline tree's twin of a focused row is measured with it.
        focused = {name: t for name, t in targets.items() if row_of(name) in FOCUSED_TARGETS[mode]}
        for concurrency in params.concurrencies:
            closed += await run_closed(focused, concurrency, params)
    else:
        for concurrency in params.concurrencies:
            closed += await run_closed(targets, concurrency, params)
        saturated = max(params.concurrencies)
        for name, (variant, _) in endpoints.routers.items():
            rate = find(closed, name, saturated).rps / 2
            direct = direct_target(variant.transport)
            opened += await run_open({direct: targets[direct], name: targets[name]}, rate, params)
    return Measurement(closed, opened, router_cpu_us(endpoints), router_cpu_us(endpoints, ready_cpu))


def choose_variants(
    args: argparse.Namespace, tmp: Path, bootstrap: str, redis_url: str
) -> list[RouterVariant]:
    events = events_extra(bootstrap, tmp / "spool") if bootstrap else None
    auth = None if args.no_auth else auth_variant(tmp)
    door = None if args.no_door else door_variant()
    variants = router_variants(
        args.router_config_extra, args.router_config_extra_name, events, args.telemetry_only, auth, door
    )
    if args.door_only:
        variants = [v for v in variants if v.name in (PLAIN, DOOR_VARIANT)]
    if args.limits_only:
        variants = [v for v in variants if v.name == PLAIN] + limits_variants(redis_url)
    if args.baseline is not None:
        variants += base_variants(variants, args.baseline, args.baseline_label)
    return variants


def budget_rows(
    mode: str, variants: list[RouterVariant], measured: Measurement, label: str = ""
) -> list[BudgetRow]:
    if mode == FULL:
        rows = derive(variants, measured.closed, measured.opened, measured.cpu_us)
    else:
        rows = FOCUSED_ROWS[mode](measured.closed, measured.cpu_us)
    pairs = pairs_of([v.name for v in variants], label) if label else []
    return rows + after_vs_base_rows(pairs, measured.closed, measured.cpu_us_ready)


def run(args: argparse.Namespace) -> dict[str, Any]:
    params, mode = params_from(args), mode_of(args)
    label = args.baseline_label if args.baseline is not None else ""
    loop_name, run_loop = event_loop_runner()
    started, loadavg_before = dt.datetime.now(dt.UTC), os.getloadavg()
    if args.pin_router:
        os.sched_setaffinity(0, {1})  # every process started from here on inherits CPU 1
    with (
        tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp,
        Fleet(Path(tmp)) as fleet,
        embedded_broker(not args.no_events, Path(tmp)) as bootstrap,
        embedded_redis(args.limits_only, Path(tmp)) as redis_url,
    ):
        variants = choose_variants(args, Path(tmp), bootstrap, redis_url)
        endpoints = spawn_endpoints(fleet, variants)
        measured = run_loop(measure(endpoints, params, mode, args.pin_router))
    return {
        "benchmark": "router overhead",
        "machine": machine_info(started, loadavg_before, loop_name),
        "params": asdict(params),
        "options": {"pin_router": args.pin_router},
        "baseline": baseline_info(args),
        "router_variants": [{"name": v.name, "transport": v.transport, "extra": v.extra} for v in variants],
        "closed_loop": [asdict(c) for c in measured.closed],
        "open_loop": [asdict(c) for c in measured.opened],
        "budget": [asdict(r) for r in budget_rows(mode, variants, measured, label)],
    }


def baseline_info(args: argparse.Namespace) -> dict[str, str] | None:
    if args.baseline is None:
        return None
    return {"tree": str(args.baseline.resolve()), "label": args.baseline_label}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__.split("\n\n")[0])
    if args.runs > 1:
        return main_runs(args)
    with sigterm_as_exit():
        report = run(args)
    print_report(report)
    write_json(args.output, report)
    print(f"\nwrote {args.output}")
    return 0


def main_runs(args: argparse.Namespace) -> int:
    """--telemetry-only --runs N: N runs, each with fresh processes, and the median of their rows.
    Runs differ by more than rounds do (where the processes land on the two cores), so a verdict
    wants several."""
    reports = []
    with sigterm_as_exit():
        for i in range(args.runs):
            progress(f"run {i + 1} of {args.runs}")
            reports.append(run(args))
            for row in reports[-1]["budget"]:
                progress(
                    f"  {row['variant']:<22} {row['metric']:<28} {row['value']:7.2f} {row['unit']}  "
                    f"{row['verdict']}"
                )
    summary = [median_row(reports, first) for first in reports[0]["budget"]]
    write_json(args.output, {"benchmark": "telemetry cost", "runs": reports, "summary": summary})
    print(f"\nwrote {args.output}")
    return 0


def median_row(reports: list[dict[str, Any]], first: dict[str, Any]) -> dict[str, Any]:
    """One budget row's median over the runs (printed with every run's value)."""
    metric, variant = first["metric"], first["variant"]
    rows = [
        row
        for report in reports
        for row in report["budget"]
        if row["metric"] == metric and row["variant"] == variant
    ]
    values = [row["value"] for row in rows]
    value = statistics.median(values)
    if any(row["verdict"] == "INVALID" for row in rows):
        verdict = "INVALID"  # a run had errors: its number cannot back a verdict
    elif metric == TELEMETRY_COST.metric:
        verdict = TELEMETRY_COST.verdict(value)
    else:
        verdict = "info"
    print(
        f"{variant:<22} {metric:<28} median {value:6.2f} {first['unit']}  {verdict:<5} "
        f"runs: {', '.join(f'{v:.1f}' for v in values)}"
    )
    return {**first, "value": value, "verdict": verdict, "basis": f"median of {len(values)} runs"}


if __name__ == "__main__":
    sys.exit(main())
