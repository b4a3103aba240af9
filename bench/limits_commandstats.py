"""What governance on Redis costs inside the real router, per request: Redis commands and router CPU.

    .venv/bin/python bench/limits_commandstats.py                         # this tree
    .venv/bin/python bench/limits_commandstats.py --before /tmp/old       # + an older tree's
                                                                          #   router_service/

Starts the sim, one real redis-server and `router-service serve` processes with bench/overhead.py's
configs: router/aiohttp+limits (in-process store) and router/aiohttp+limits-redis (this tree, and
with --before the older tree's router_service/ first on PYTHONPATH). Then, rounds alternating the
routers' order, a fixed number of Complete calls at c=1 and at c=32, each bracketed by
`INFO commandstats` and the router process's CPU time (/proc): script calls (EVALSHA) and the
commands run inside them per request, Redis's microseconds per call (wall time: it grows with the
box's load), router CPU microseconds per request, p50 and req/s. The load generator runs in this
process, on the same shared machine: compare the rows of one run, by their ratios, and note the load.
Writes bench/results/limits_commandstats.json.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import redis.asyncio as aioredis

from bench.load import closed_loop
from bench.overhead_clients import router_client
from bench.overhead_variants import LIMITS_REDIS_VARIANT, LIMITS_VARIANT, RouterVariant, limits_extra
from bench.servers import Fleet, Server, grpc_health_probe, http_probe, process_cpu_s, wait_ready
from router_service.embedded.redis_server import EmbeddedRedis

RESULTS = Path(__file__).parent / "results" / "limits_commandstats.json"
SETTLE_WAIT_S = 0.05  # the last calls' settles linger up to 2 ms before they are sent


def spawn_routers(fleet: Fleet, sim_url: str, redis_url: str, before: Path | None) -> dict[str, Server]:
    rows: dict[str, tuple[dict[str, Any], Path | None]] = {
        LIMITS_VARIANT: (limits_extra(), None),
        LIMITS_REDIS_VARIANT: (limits_extra(redis_url), None),
    }
    if before is not None:
        rows[f"{LIMITS_REDIS_VARIANT} (before)"] = (limits_extra(redis_url), before)
    servers: dict[str, Server] = {}
    for name, (extra, tree) in rows.items():
        variant = RouterVariant(name, extra)
        if tree is not None:
            os.environ["PYTHONPATH"] = str(tree)  # the child's router_service/ is the older tree's
        try:
            servers[name] = fleet.spawn_router(name, functools.partial(config_of, variant, sim_url))
        finally:
            os.environ.pop("PYTHONPATH", None)
    return servers


def config_of(variant: RouterVariant, sim_url: str, port: int) -> dict[str, Any]:
    return variant.config(sim_url, port)


async def commandstats(client: aioredis.Redis) -> dict[str, tuple[int, int]]:
    info = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): (v["calls"], v["usec"]) for name, v in info.items()}


async def measure_cell(server: Server, client: aioredis.Redis, concurrency: int, n: int) -> dict[str, Any]:
    """One cell: `n` calls at `concurrency`, with the Redis commands and router CPU they caused."""
    async with router_client(server.port) as call:
        before, cpu0, t0 = await commandstats(client), process_cpu_s(server.proc.pid), time.perf_counter()
        sample = await closed_loop(call, concurrency, n)
        elapsed = time.perf_counter() - t0
        await asyncio.sleep(SETTLE_WAIT_S)
        cpu1, after = process_cpu_s(server.proc.pid), await commandstats(client)
    commands = {}
    for name, (calls, usec) in after.items():
        calls0, usec0 = before.get(name, (0, 0))
        if calls > calls0 and name not in ("info", "config"):
            added = calls - calls0
            commands[name] = {"per_request": added / n, "usec_per_call": (usec - usec0) / added}
    latencies = sorted(sample.latencies_ns)
    return {
        "router_cpu_us": (cpu1 - cpu0) / n * 1e6,
        "p50_ms": latencies[len(latencies) // 2] / 1e6,
        "rps": n / elapsed,
        "errors": sample.errors,
        "commands": commands,
    }


async def run(before: Path | None, rounds: int, requests: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="limits-commandstats-"))
    redis_server = EmbeddedRedis(log_path=workdir / "redis.log")
    await redis_server.start()
    client = aioredis.Redis.from_url(redis_server.url)
    cells: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        with Fleet(workdir) as fleet:
            sim = fleet.spawn_sim()
            servers = spawn_routers(fleet, f"http://127.0.0.1:{sim.port}/v1", redis_server.url, before)
            await wait_ready(sim, http_probe(f"http://127.0.0.1:{sim.port}/healthz"))
            for server in servers.values():
                await wait_ready(server, grpc_health_probe(server.port))
            names = list(servers)
            for name in names:  # warm-up: connections, script load, caches
                await measure_cell(servers[name], client, 32, 300)
            for r in range(rounds):
                for name in names if r % 2 == 0 else names[::-1]:
                    for concurrency, n in ((1, requests // 3), (32, requests)):
                        cell = await measure_cell(servers[name], client, concurrency, n)
                        cells.setdefault(name, {}).setdefault(f"c{concurrency}", []).append(cell)
                print(f"  round {r + 1}/{rounds} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    finally:
        await client.aclose()
        await redis_server.stop()
    return cells


def summary(cells: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Per router and concurrency: round medians of CPU, p50 and req/s; EVALSHA calls a request."""
    out: dict[str, Any] = {}
    for name, by_c in cells.items():
        for c, rows in by_c.items():
            evalsha = [row["commands"].get("evalsha", {}).get("per_request", 0.0) for row in rows]
            inner = [
                sum(v["per_request"] for k, v in row["commands"].items() if k != "evalsha") for row in rows
            ]
            out.setdefault(name, {})[c] = {
                "router_cpu_us": statistics.median(row["router_cpu_us"] for row in rows),
                "p50_ms": statistics.median(row["p50_ms"] for row in rows),
                "rps": statistics.median(row["rps"] for row in rows),
                "evalsha_per_request": statistics.median(evalsha),
                "commands_in_scripts_per_request": statistics.median(inner),
                "errors": sum(row["errors"] for row in rows),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="an older tree holding router_service/, run alongside")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=3000, help="c=32 calls per cell (c=1: a third)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
    cells = asyncio.run(run(args.before, args.rounds, args.requests))
    result = summary(cells)
    for name, by_c in result.items():
        for c, row in by_c.items():
            print(f"{name:36} {c:4} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    report = {
        "benchmark": "limits on Redis in the router: Redis commands and router CPU a request",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "params": {"requests_c32": args.requests, "requests_c1": args.requests // 3, "rounds": args.rounds},
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "result": result,
        "cells": cells,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
