"""A cache hit against a miss, end to end over real gRPC: `router-service serve` processes with the
cache in process (`store: memory`) and shared (`store: redis`, a real redis-server on loopback),
an `instant` simulator upstream (its own process), and this process as the client.

Per store: a hit (the same primed request every call) and a miss (a new request every call: the
upstream call, then the store of its answer), sequential (c=1: p50/p99 of the whole call as the
client sees it) and 32 concurrent callers (requests per second), and the CPU the serving process
spent per call over both (from /proc: steadier than latency on a shared box). The cells run in alternating
rounds, back to back in one run, in an order rotated (and reversed every other round) from round to
round, so that load on the shared box and its drift hit every variant alike; the
ratios (hit/miss) are the figures to read. Writes bench/results/cache_grpc.json.

    .venv/bin/python bench/cache_grpc.py [--requests 1500] [--rounds 3] [--baseline DIR]

`--baseline DIR` adds a `memory@base` router served from another source tree (for instance
`git archive <commit> | tar -x -C DIR`), measured in the same alternating rounds: before/after.

Targets (issue 15): a hit under 0.5 ms p50 at c=1 in process; 100%-hit throughput >= 2x the
miss path's.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as `python bench/cache_grpc.py`: the repository root first on the path (as overhead.py).
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import grpc
import yaml

from bench.overhead_baseline import tree_python
from bench.servers import Fleet, free_port, grpc_health_probe, http_probe, process_cpu_s, wait_ready
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.embedded.redis_server import EmbeddedRedis

ECHO_METHOD = "/bench.v1.Echo/Echo"
RESULTS = Path(__file__).parent / "results" / "cache_grpc.json"
SYSTEM = "You are a careful assistant for an online bookshop. " * 24  # ~1.2 KB, as bench/cache.py
CONCURRENCY = 32
_unique = itertools.count()


def router_config(sim_url: str, port: int, *, cache: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": {"listen": f"127.0.0.1:{port}", "workers": 1, "grace_period_s": 1},
        "metrics": {"listen": ""},
        "http": {"transport": "aiohttp"},
        "providers": {"sim": {"kind": "openai", "base_url": sim_url, "api_key": "bench-secret"}},
        "models": [
            {
                "name": "m1",
                "provider": "sim",
                "price_per_mtok": {"input": "0.15", "output": "0.60"},
                "capabilities": ["streaming"],
            }
        ],
        "policies": {"default": {"models": ["m1"]}},
        "cache": {"enabled": True, "policies": ["default"], **cache},
    }


def request(question: str) -> pb.CompleteRequest:
    chat = pb.ChatRequest(
        messages=[
            pb.Message(role=pb.ROLE_SYSTEM, content=SYSTEM),
            pb.Message(role=pb.ROLE_USER, content=question),
        ],
        options=pb.GenerationOptions(temperature=0.0, max_output_tokens=256),
    )
    return pb.CompleteRequest(chat=chat)


HIT = request("Where is my order #1?")


def next_miss() -> pb.CompleteRequest:
    return request(f"Where is my order #{next(_unique) + 1_000_000}?")


Call = Callable[[], Awaitable[object]]


async def sequential(call: Call, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    return samples


async def concurrent(call: Call, n: int) -> float:
    per_worker = n // CONCURRENCY

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return per_worker * CONCURRENCY / (time.perf_counter() - t0)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def round_order(cells: list[tuple[str, Call]], round_: int) -> list[tuple[str, Call]]:
    """The cells in round `round_`'s order: starting one cell later each round, and backwards
    every other round, so that no cell always runs first, last or after the same neighbour, and a
    drift of the box's load over the run spreads over all of them (a fixed order put it on one)."""
    n = len(cells)
    step = -1 if round_ % 2 else 1  # round r starts at cell r, forwards or backwards
    return [cells[(round_ + step * i) % n] for i in range(n)]


def complete(stub: pb_grpc.RouterServiceStub, make: Callable[[], pb.CompleteRequest]) -> Call:
    async def call() -> object:
        return await stub.Complete(make(), timeout=10)

    return call


async def measure(
    ports: dict[str, int], echo_port: int, n: int, rounds: int, pids: dict[str, int]
) -> dict[str, Any]:
    """`pids`: the server process of each router name and of "echo", whose CPU per call is read."""
    channels = {name: grpc.aio.insecure_channel(f"127.0.0.1:{port}") for name, port in ports.items()}
    echo_channel = grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}")
    stubs = {name: pb_grpc.RouterServiceStub(ch) for name, ch in channels.items()}
    latency: dict[str, list[float]] = {}
    rps: dict[str, list[float]] = {}
    cpu_s: dict[str, float] = {}  # the server's CPU seconds over the cell's measured calls
    try:
        for name, stub in stubs.items():  # warm up; prime the hit; check it is one
            await sequential(complete(stub, next_miss), 200)
            primed = await stub.Complete(HIT, timeout=10)
            again = await stub.Complete(HIT, timeout=10)
            assert not primed.routing.HasField("cache") and again.routing.cache.hit, name
        # The floor: a bare grpc.aio echo of the same request bytes (bench/echo_server.py).
        echo = echo_channel.unary_unary(ECHO_METHOD)
        payload = HIT.SerializeToString()

        async def echo_call() -> object:
            return await echo(payload, timeout=10)

        calls: dict[str, Call] = {"echo (floor)": echo_call}
        server_of = {"echo (floor)": pids["echo"]}
        for name, stub in stubs.items():
            calls[f"{name} hit"] = complete(stub, lambda: HIT)
            calls[f"{name} miss"] = complete(stub, next_miss)
            server_of[f"{name} hit"] = server_of[f"{name} miss"] = pids[name]
        await sequential(echo_call, 200)
        for round_ in range(rounds):  # alternating rounds: every cell sees the same box
            order = round_order(list(calls.items()), round_)
            for cell, call in order:
                before = process_cpu_s(server_of[cell])
                latency.setdefault(cell, []).extend(await sequential(call, n // rounds))
                cpu_s[cell] = cpu_s.get(cell, 0.0) + process_cpu_s(server_of[cell]) - before
            for cell, call in order:
                before = process_cpu_s(server_of[cell])
                rps.setdefault(cell, []).append(await concurrent(call, n))
                cpu_s[cell] += process_cpu_s(server_of[cell]) - before
    finally:
        for ch in channels.values():
            await ch.close()
        await echo_channel.close()
    cells: dict[str, dict[str, Any]] = {
        cell: {
            "p50_ms": pct(samples, 0.5),
            "p99_ms": pct(samples, 0.99),
            "rps_c32": statistics.median(rps[cell]),
            "rps_c32_rounds": rps[cell],
            # Server CPU per call over both phases (c=1 and c=32), less noisy than latency.
            "server_cpu_us": cpu_s[cell] / (len(samples) + rounds * (n // CONCURRENCY) * CONCURRENCY) * 1e6,
        }
        for cell, samples in latency.items()
    }
    ratios = {
        name: {
            "p50_hit_over_miss": cells[f"{name} hit"]["p50_ms"] / cells[f"{name} miss"]["p50_ms"],
            "rps_hit_over_miss": cells[f"{name} hit"]["rps_c32"] / cells[f"{name} miss"]["rps_c32"],
            "hit_p50_over_echo_ms": cells[f"{name} hit"]["p50_ms"] - cells["echo (floor)"]["p50_ms"],
        }
        for name in ports
    }
    return {"cells": cells, "ratios": ratios}


async def wait_all(fleet_servers: list[Any], sim: Any) -> None:
    await wait_ready(sim, http_probe(f"http://127.0.0.1:{sim.port}/healthz"))
    for server in fleet_servers:
        await wait_ready(server, grpc_health_probe(server.port))


def spawn_from_tree(fleet: Fleet, tree: Path, config_for_port: Callable[[int], dict[str, Any]]) -> Any:
    """`router-service serve` importing the packages of `tree` (e.g. `git archive` of an earlier
    commit) ahead of the installed ones: before/after figures from one run on one box."""
    port = free_port()
    path = fleet.workdir / "router-memory-base.yaml"
    path.write_text(yaml.safe_dump(config_for_port(port), sort_keys=False))
    # tree_python keeps this checkout off sys.path: a plain `-m` from here served the new code.
    argv = [*tree_python(tree), "-m", "router_launcher.cli"]
    return fleet.spawn("router-memory-base", port, [*argv, "serve", "--config", str(path)])


def run(n: int, rounds: int, baseline: Path | None = None) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-cache-grpc-") as tmp, Fleet(Path(tmp)) as fleet:
        redis = EmbeddedRedis(log_path=Path(tmp) / "redis.log")
        asyncio.run(redis.start())
        try:
            sim = fleet.spawn_sim()
            echo = fleet.spawn_echo()
            sim_url = f"http://127.0.0.1:{sim.port}/v1"
            variants = {
                "memory": {"store": "memory"},
                "redis": {"store": "redis", "redis_url": redis.url},
            }
            routers = {
                name: fleet.spawn_router(
                    f"router-{name}", functools.partial(router_config, sim_url, cache=cache)
                )
                for name, cache in variants.items()
            }
            if baseline is not None:  # the same in-process cell, served by another source tree
                routers["memory@base"] = spawn_from_tree(
                    fleet, baseline, functools.partial(router_config, sim_url, cache=variants["memory"])
                )

            async def go() -> dict[str, Any]:
                await wait_all(list(routers.values()), sim)
                await wait_ready(echo, grpc_health_probe(echo.port))
                pids = {name: s.proc.pid for name, s in routers.items()} | {"echo": echo.proc.pid}
                ports = {name: s.port for name, s in routers.items()}
                return await measure(ports, echo.port, n, rounds, pids)

            result = asyncio.run(go())
        finally:
            asyncio.run(redis.stop())
    result["machine"] = {
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    result["params"] = {"requests": n, "rounds": rounds, "concurrency": CONCURRENCY}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a source tree (git archive of a commit) to serve a 'memory@base' router from, for A/B",
    )
    args = parser.parse_args(argv)
    report = run(args.requests, args.rounds, args.baseline)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    for cell, c in report["cells"].items():
        print(
            f"{cell:18} p50 {c['p50_ms']:.3f} ms  p99 {c['p99_ms']:.3f} ms  c=32 {c['rps_c32']:.0f} req/s"
            f"  server CPU {c['server_cpu_us']:.0f} us/call"
        )
    for name, r in report["ratios"].items():
        p50, rps, above = r["p50_hit_over_miss"], r["rps_hit_over_miss"], r["hit_p50_over_echo_ms"]
        print(f"{name:8} hit/miss: p50 x{p50:.2f}, c=32 throughput x{rps:.2f}; hit-echo p50 {above:+.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
