"""Router request path: CPU per `Complete` call, and where it goes (a profiling harness).

    .venv/bin/python -m bench.profile_request_path                       # CPU us/request, every variant
    .venv/bin/python -m bench.profile_request_path --variants router --concurrency 1
    .venv/bin/python -m bench.profile_request_path --variants router,router+events --profile --top 40
    .venv/bin/python -m bench.profile_request_path --collapsed /tmp/spy.txt   # breakdown of a py-spy run

Run it as a module from the repository root: as a script, bench/consumers.py would shadow the
`consumers` package that the router imports.

The servers under test run in *this* process (uvloop, like `router-service serve`), so its process
CPU is theirs. A simulated provider (`SimServer`, preset "instant") and the load generator (this
module with `--client`, real loopback gRPC) are child processes, and with events an
`EmbeddedBroker` (Tansu) is one too; the publisher's sender task (encoding, batching, aiokafka)
runs here and is counted, as in a real router. This process is pinned to CPU 0 and the children
to CPU 1 (`--no-pin` to leave them be): migrations made CPU per request vary by 2x between reps.

Variants (`--variants`, default all), started side by side and measured in alternating reps so
that noise from the shared machine lands on all of them alike:
- echo            a bare grpc.aio echo of 64 bytes: what any gRPC unary call costs this process
- http            the router's upstream call (`WireClient.post_json` on `make_http_client`'s aiohttp
                  transport) to the sim, from this process: what one upstream call costs
- router          `Complete` through a RouterApp (bench/overhead.py's config: metrics interceptor
                  and observer on, events off)
- router+events   the same, publishing its decision, attempt and completion events to the broker
                  (pinned off the router's CPU), each written to the spool first (`events.durable`)
- router+events-volatile   the same with `events.durable: false`: events in memory until acked
- router+tracing  `router` with `tracing` on, every call sampled (no caller traceparent: a new
                  trace each), spans exported over OTLP/HTTP to a sink process off the router's CPU
- router+tracing-unsampled   the same with `sample_ratio: 0`: what tracing costs a call it does
                  not sample (the gRPC instrumentation's interceptor, non-recording spans)
- door            `router`'s config with the OpenAI-compatible HTTP door (server.openai_http), the
                  same request as POST /v1/chat/completions (model "router") from an aiohttp
                  session with keep-alive: what the HTTP door costs next to the gRPC path

CPU per request: `time.process_time()` (all threads) over a rep, after a short settle so that the
event sender's linger is inside it, divided by the calls answered; median and min over the reps.
`--gc-freeze` freezes the start-up objects as `serve` does; without it, full collections walk them
too, and events (whose queued objects get promoted) trigger more of those (see bench/README.md).

Where it goes:
- `--profile` runs more reps of each router variant under cProfile and prints self time by
  component, builtins and stdlib charged to the component that called them. cProfile cannot see
  C code (uvloop, gRPC's Cython core) and slows Python more than C, so it is for finding hot Python
  functions (`--top N`), not for shares of the whole.
- For shares of the whole, sample with py-spy (a tool, not a dependency: `pip install py-spy`
  anywhere) including native frames, one variant at a time, then classify the stacks:

      py-spy record --native --rate 100 --format raw -o /tmp/spy.txt -- \\
          .venv/bin/python -m bench.profile_request_path --variants router --reps 4 --requests 3000
      .venv/bin/python -m bench.profile_request_path --collapsed /tmp/spy.txt

  Each sample goes to the innermost frame that belongs to a component (native interpreter and
  libc frames are skipped over); idle samples (epoll/futex waits) and start-up are left out.
"""

# Its parts: bench/profile_load.py (the load generator child), bench/profile_servers.py (the servers
# and processes around the router), bench/profile_breakdown.py (time by component); this module
# starts the variants, measures CPU per request in alternating reps and prints the tables.

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import multiprocessing
import os
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from bench.load import closed_loop
from bench.overhead_clients import HTTP_BODY, HTTP_HEADERS
from bench.profile_breakdown import print_collapsed, print_profile
from bench.profile_load import LoadClient, client_main
from bench.profile_servers import (
    echo_server,
    events_config,
    otlp_sink,
    pin_children_to,
    pin_to,
    router_app,
    router_config,
    sim_main,
)
from router_service.config_schema import HttpConfig
from router_service.providers.base import error_from_response
from router_service.providers.http import make_http_client
from router_service.providers.wire import WireClient
from router_service.telemetry.publisher_config import DEFAULT_LINGER_MS

VARIANTS = (
    "echo",
    "http",
    "router",
    "router+events",
    "router+events-volatile",
    "router+tracing",
    "router+tracing-unsampled",
    "door",
)
# After a rep: the event sender's linger plus the broker's ack, so that the rep's last round is
# counted in it (and not in the next rep, which may be another variant's).
SETTLE_S = DEFAULT_LINGER_MS / 1000 + 0.1


# --- measurement -----------------------------------------------------------------------------------

Rep = Callable[[int], Awaitable[int]]  # runs n requests, returns how many were answered


@dataclass
class Variant:
    name: str
    run: Rep
    cpu_us: list[float] = field(default_factory=list)


async def measure_rep(variant: Variant, requests: int, profiler: cProfile.Profile | None = None) -> float:
    before = time.process_time()
    if profiler is not None:
        profiler.enable()
    done = await variant.run(requests)
    await asyncio.sleep(SETTLE_S)
    if profiler is not None:
        profiler.disable()
    return (time.process_time() - before) / done * 1e6


def http_rep(url: str, concurrency: int) -> tuple[Rep, Callable[[], Awaitable[None]]]:
    """One upstream call the way the router's adapters make it (`WireClient.post_json`)."""
    client = make_http_client(HttpConfig(transport="aiohttp"))
    wire = WireClient(client, HTTP_HEADERS, error_from_response)

    async def call() -> None:
        await wire.post_json(url, HTTP_BODY)

    async def run(requests: int) -> int:
        sample = await closed_loop(call, concurrency, requests)
        if sample.errors:
            raise RuntimeError(f"http: {sample.errors} calls failed ({sample.first_error})")
        return len(sample.latencies_ns)

    return run, client.aclose


async def start_variants(
    names: list[str],
    stack: AsyncExitStack,
    client: LoadClient,
    sim_url: str,
    concurrency: int,
    others_cpu: int | None = None,
) -> list[Variant]:
    def over_grpc(target: str, port: int) -> Rep:
        return lambda n: client.run(target, port, n, concurrency)

    variants = []
    for name in names:
        if name == "echo":
            port = await stack.enter_async_context(echo_server())
            variants.append(Variant(name, over_grpc("echo", port)))
        elif name == "http":
            run, close = http_rep(f"{sim_url}/chat/completions", concurrency)
            stack.push_async_callback(close)
            variants.append(Variant(name, run))
        else:
            events = (
                await stack.enter_async_context(events_config()) if name.startswith("router+events") else None
            )
            if name == "router+events-volatile" and events is not None:
                events["durable"] = False  # no write-ahead log: events in memory until acked
            tracing = None
            if name.startswith("router+tracing"):
                endpoint = f"{await otlp_sink(stack, others_cpu)}/v1/traces"
                ratio = 0.0 if name == "router+tracing-unsampled" else 1.0
                tracing = {"enabled": True, "endpoint": endpoint, "sample_ratio": ratio}
            door = name == "door"
            port = await stack.enter_async_context(router_app(router_config(sim_url, events, tracing), door))
            variants.append(Variant(name, over_grpc("door" if door else "router", port)))
    return variants


async def main(args: argparse.Namespace) -> None:
    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    router_cpu, others_cpu = (0, 1) if args.pin and len(os.sched_getaffinity(0)) >= 2 else (None, None)
    sim = ctx.Process(target=sim_main, args=(ports, others_cpu), daemon=True)
    sim.start()
    sim_url = f"http://127.0.0.1:{ports.get(timeout=30)}/v1"
    async with AsyncExitStack() as stack:
        stack.callback(sim.terminate)
        client = await stack.enter_async_context(LoadClient.running(others_cpu))
        pin_to(router_cpu)
        variants = await start_variants(args.variants, stack, client, sim_url, args.concurrency, others_cpu)
        pin_children_to(others_cpu)
        for variant in variants:  # warm-up: connections, caches, lazily built objects
            await variant.run(args.warmup)
        if args.gc_freeze:
            # What `serve` does after start (server.gc_freeze_after_start): without it every full
            # collection walks the start-up objects too, and a variant whose requests promote
            # more objects to the oldest generation (events) pays for those walks.
            gc.collect()
            gc.freeze()
        for rep in range(args.reps):
            shift = rep % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                variant.cpu_us.append(await measure_rep(variant, args.requests))
        print_cpu(variants, args)
        if args.profile:
            for variant in variants:
                if variant.name.startswith("router") or variant.name == "door":
                    await profile(variant, args)


def print_cpu(variants: list[Variant], args: argparse.Namespace) -> None:
    print(f"CPU per request (us), {args.reps} reps x {args.requests} calls, concurrency {args.concurrency}")
    print(f"{'variant':<20} {'median':>8} {'min':>8}   reps")
    medians = {}
    for v in variants:
        medians[v.name] = statistics.median(v.cpu_us)
        reps = " ".join(f"{x:.0f}" for x in v.cpu_us)
        print(f"{v.name:<20} {medians[v.name]:>8.1f} {min(v.cpu_us):>8.1f}   {reps}")
    for events in ("router+events", "router+events-volatile"):
        if events in medians and "router" in medians:
            extra = medians[events] - medians["router"]
            share = extra / medians["router"] * 100
            print(f"{events}: events add {extra:.1f} us/request ({share:.1f}% of router CPU)")


async def profile(variant: Variant, args: argparse.Namespace) -> None:
    profiler = cProfile.Profile()
    calls = args.profile_reps * args.requests
    for _ in range(args.profile_reps):
        await measure_rep(variant, args.requests, profiler)
    if args.profile_out:  # for pstats: callers, callees (`print_callers("create_task")`)
        profiler.dump_stats(f"{args.profile_out}.{variant.name}")
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    print_profile(variant.name, stats, calls, args.top)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {VARIANTS}")
    parser.add_argument("--requests", type=int, default=2000, help="calls per rep")
    parser.add_argument("--reps", type=int, default=6, help="measured reps per variant")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin processes to CPUs")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after start-up, as `router-service serve` does"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the router variants")
    parser.add_argument("--profile-reps", type=int, default=2)
    parser.add_argument("--top", type=int, default=0, help="with --profile: list the top N functions")
    parser.add_argument("--profile-out", help="with --profile: dump pstats to PROFILE_OUT.<variant>")
    parser.add_argument("--collapsed", type=Path, help="classify a py-spy raw output file and exit")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pin-client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.variants = [name for name in args.variants.split(",") if name]
    if unknown := set(args.variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.collapsed:
        print_collapsed(arguments.collapsed)
    elif arguments.client:
        pin_to(arguments.pin_client)
        uvloop.run(client_main())
    else:
        uvloop.run(main(arguments))
