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

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import gc
import inspect
import json
import multiprocessing
import os
import pstats
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import uvloop
from aiohttp import web
from prometheus_client import CollectorRegistry

from bench.overhead_clients import MODEL
from bench.overhead_variants import base_router_config
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.config_schema import HttpConfig
from router_service.embedded.broker import EmbeddedBroker
from router_service.providers.base import error_from_response
from router_service.providers.http import make_http_client
from router_service.providers.wire import WireClient
from router_service.settings import parse_config
from router_service.sim.presets import preset_config
from router_service.sim.server import SimServer
from router_service.telemetry import observer as observer_module
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
PROMPT = "Hello router"
ECHO_METHOD = "/bench.v1.Echo/Echo"
ECHO_PAYLOAD = b"x" * 64
HTTP_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}).encode()
DOOR_BODY = json.dumps({"model": "router", "messages": [{"role": "user", "content": PROMPT}]}).encode()
# After a rep: the event sender's linger plus the broker's ack, so that the rep's last round is
# counted in it (and not in the next rep, which may be another variant's).
SETTLE_S = DEFAULT_LINGER_MS / 1000 + 0.1


def pin_to(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def pin_children_to(cpu: int | None) -> None:
    """Children started after this process pinned itself (the embedded broker) join the others:
    a real deployment gives them cores of their own, or other machines, not a share of the
    router's."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            with contextlib.suppress(OSError):  # exited meanwhile
                os.sched_setaffinity(int(pid), {cpu})


# --- load generator (child process) ----------------------------------------------------------------


async def client_main() -> None:
    """Reads `<target> <port> <requests> <concurrency>` lines, answers one JSON line per command."""
    channels: dict[int, grpc.aio.Channel] = {}
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        while line := (await reader.readline()).decode().strip():
            target, port, requests, concurrency = line.split()
            if target == "door":
                call = door_call(session, int(port))
            else:
                channel = channels.get(int(port))
                if channel is None:
                    channel = channels[int(port)] = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
                call = client_call(channel, target)
            done, errors = await closed_loop(call, int(requests), int(concurrency))
            print(json.dumps({"done": done, "errors": errors}), flush=True)


def door_call(session: aiohttp.ClientSession, port: int) -> Callable[[], Awaitable[None]]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"content-type": "application/json"}

    async def call_door() -> None:
        async with session.post(url, data=DOOR_BODY, headers=headers) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")

    return call_door


def client_call(channel: grpc.aio.Channel, target: str) -> Callable[[], Awaitable[None]]:
    if target == "echo":
        echo = channel.unary_unary(ECHO_METHOD)

        async def call_echo() -> None:
            await echo(ECHO_PAYLOAD, timeout=10)

        return call_echo
    complete = pb_grpc.RouterServiceStub(channel).Complete
    chat = pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content=PROMPT)])
    request = pb.CompleteRequest(chat=chat)

    async def call_router() -> None:
        response = await complete(request, timeout=10)
        if not response.message.content:
            raise RuntimeError("empty answer")

    return call_router


async def closed_loop(
    call: Callable[[], Awaitable[None]], requests: int, concurrency: int
) -> tuple[int, int]:
    remaining = requests
    done = errors = 0

    async def worker() -> None:
        nonlocal remaining, done, errors
        while remaining > 0:
            remaining -= 1
            try:
                await call()
                done += 1
            except Exception:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, errors


class LoadClient:
    """The load generator child process, driven over its stdin."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    @asynccontextmanager
    async def running(cls, cpu: int | None) -> AsyncIterator[LoadClient]:
        pin = ["--pin-client", str(cpu)] if cpu is not None else []
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bench.profile_request_path", "--client", *pin),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            yield cls(proc)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            await proc.wait()

    async def run(self, target: str, port: int, requests: int, concurrency: int) -> int:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{target} {port} {requests} {concurrency}\n".encode())
        await self._proc.stdin.drain()
        answer = json.loads(await self._proc.stdout.readline())
        if answer["errors"]:
            raise RuntimeError(f"{target}: {answer['errors']} of {requests} calls failed")
        return int(answer["done"])


# --- servers ---------------------------------------------------------------------------------------


def sim_main(port_queue: Any, cpu: int | None) -> None:
    pin_to(cpu)

    async def serve() -> None:
        sim = SimServer(preset_config("instant", seed=7))
        port_queue.put(await sim.start())
        await asyncio.Event().wait()

    uvloop.run(serve())


def otlp_sink_main(port_queue: Any, cpu: int | None) -> None:
    """An OTLP/HTTP trace receiver that accepts and drops every export (the tracing variant's
    collector: the router's export work is what is measured, not a collector's)."""
    pin_to(cpu)

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", accept)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_queue.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Event().wait()

    uvloop.run(serve())


def router_config(
    sim_url: str, events: dict[str, Any] | None, tracing: dict[str, Any] | None = None
) -> dict[str, Any]:
    """bench/overhead.py's router config (one model on the sim, aiohttp transport, no metrics
    port) on a free port, with `events` and `tracing` when given."""
    config = base_router_config(sim_url, 0)
    if events is not None:
        config["events"] = events
    if tracing is not None:
        config["tracing"] = tracing
    return config


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


@asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.v1.Echo", {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


@asynccontextmanager
async def router_app(config: dict[str, Any], door: bool = False) -> AsyncIterator[int]:
    """The router's gRPC port, or with `door` its OpenAI HTTP door's (served on port 0)."""
    if door:
        config["server"]["openai_http"] = {"listen": "127.0.0.1:0"}
    # Own registry: two routers in one process would collide on the live-state collector.
    app = RouterApp(parse_config(config), registry=CollectorRegistry())
    await app.start()
    try:
        yield app.openai_port if door else app.port
    finally:
        await app.stop(grace_s=1)


@asynccontextmanager
async def events_config() -> AsyncIterator[dict[str, Any]]:
    broker = EmbeddedBroker(log_path=Path(tempfile.gettempdir()) / "profile-request-path-tansu.log")
    await broker.start()
    try:
        with tempfile.TemporaryDirectory() as spool:
            yield {
                "bootstrap_servers": broker.bootstrap,
                "enable_idempotence": False,  # Tansu has no idempotent producer
                "create_topic_partitions": 3,
                "spool_dir": spool,
            }
    finally:
        await broker.stop()


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
    headers = {"content-type": "application/json", "authorization": "Bearer bench-key"}
    wire = WireClient(client, headers, error_from_response)

    async def call() -> None:
        await wire.post_json(url, HTTP_BODY)

    async def run(requests: int) -> int:
        done, errors = await closed_loop(call, requests, concurrency)
        if errors:
            raise RuntimeError(f"http: {errors} calls failed")
        return done

    return run, client.aclose


async def otlp_sink(stack: AsyncExitStack, cpu: int | None) -> str:
    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    sink = ctx.Process(target=otlp_sink_main, args=(ports, cpu), daemon=True)
    sink.start()
    stack.callback(sink.terminate)
    return f"http://127.0.0.1:{ports.get(timeout=30)}"


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


# --- components ------------------------------------------------------------------------------------

# (component, fragments of a frame's file path). First match wins; "#..." tags are set below.
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("grpc core + aio", ("/grpc/", "grpc/_cython", "/grpc_status/", "/grpc_health/")),
    ("protobuf", ("/google/protobuf/", "_pb2.py", "google._upb", "_message.abi3", "/google/type/")),
    ("api (servicer, codec, interceptor)", ("router_service/api/",)),
    ("OpenAI door (request, response, errors)", ("router_service/openai_door/", "request_rules.py")),
    (
        "engine + request path",
        (
            "router_service/engine.py",
            "router_service/targets.py",
            "router_service/attempt_recorder.py",
            "router_service/call.py",
            "router_service/clock.py",
        ),
    ),
    ("routing decision", ("router_service/routing/", "router_service/catalog.py")),
    ("live state (resilience)", ("router_service/resilience/",)),
    ("fleet", ("router_service/fleet/",)),
    ("providers (adapter, wire)", ("router_service/providers/",)),
    ("httpx", ("/httpx/", "/httpcore/")),
    (
        "aiohttp + transport",
        ("/aiohttp/", "/httpx_aiohttp/", "/multidict/", "/yarl/", "/propcache/", "_http_parser", "llhttp"),
    ),
    ("metrics (prometheus)", ("/prometheus_client/", "#metrics-observer")),
    ("events (build, encode, queue, send)", ("router_service/telemetry/", "/aiokafka/", "#events-observer")),
    ("domain", ("router_service/domain.py", "router_service/errors.py")),
    ("asyncio", ("/asyncio/", "_asynciomodule")),
    (
        "event loop + I/O (uvloop, libuv)",
        ("/uvloop/", "loop.c", "core.c", "linux.c", "stream.c", "uv-common"),
    ),
]
STDLIB = "stdlib / interpreter, unattributed"


def _observer_tags() -> list[tuple[int, int, str]]:
    """Line ranges of observer.py's classes: its metrics and events halves are different components."""
    ranges = []
    for cls, tag in (
        (observer_module.MetricsObserver, "#metrics-observer"),
        (observer_module.EventObserver, "#events-observer"),
    ):
        lines, start = inspect.getsourcelines(cls)
        ranges.append((start, start + len(lines), tag))
    return ranges


_OBSERVER_PATH = observer_module.__file__.replace(os.sep, "/")
_OBSERVER_TAGS = _observer_tags()


def component_of(path: str, line: int = 0) -> str | None:
    """The component a frame's file (native: library or C file) belongs to, or None."""
    if path.endswith("router_service/telemetry/observer.py") or path == _OBSERVER_PATH:
        # Its module-level helpers (_deployment, _attempt_children) cache the metrics children.
        path = "#metrics-observer"
        for start, end, tag in _OBSERVER_TAGS:
            if line and start <= line < end:
                path = tag
    for component, fragments in COMPONENTS:
        if any(fragment in path for fragment in fragments):
            return component
    return None


def print_shares(title: str, amounts: dict[str, float], per_request: float | None = None) -> None:
    """Shares of the total; with `per_request` (the amount one request accounts for), us too."""
    total = sum(amounts.values())
    print(title)
    for name, value in sorted(amounts.items(), key=lambda kv: -kv[1]):
        us = f"  {value / per_request:8.1f} us" if per_request else ""
        print(f"  {name:<38} {value / total * 100:5.1f}%{us}")


# --- cProfile breakdown ----------------------------------------------------------------------------


class ProfileClassifier:
    """Components of cProfile's functions; builtins and stdlib go to their heaviest caller's."""

    def __init__(self, stats: dict[Any, Any]) -> None:
        self._stats = stats
        self._memo: dict[Any, str] = {}

    def component(self, func: tuple[str, int, str], depth: int = 0) -> str:
        if func in self._memo:
            return self._memo[func]
        filename, line, name = func
        found = component_of(name if filename == "~" else filename.replace(os.sep, "/"), line)
        if found is None:
            found = STDLIB
            callers = self._stats[func][4]
            if callers and depth < 20:
                self._memo[func] = STDLIB  # breaks recursion cycles
                found = self.component(max(callers, key=lambda c: callers[c][2]), depth + 1)
        self._memo[func] = found
        return found


async def profile(variant: Variant, args: argparse.Namespace) -> None:
    profiler = cProfile.Profile()
    calls = args.profile_reps * args.requests
    for _ in range(args.profile_reps):
        await measure_rep(variant, args.requests, profiler)
    if args.profile_out:  # for pstats: callers, callees (`print_callers("create_task")`)
        profiler.dump_stats(f"{args.profile_out}.{variant.name}")
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    classify = ProfileClassifier(stats)
    seconds: dict[str, float] = collections.defaultdict(float)
    for func, (_, _, tottime, _, _) in stats.items():
        seconds[classify.component(func)] += tottime
    title = f"\n{variant.name}: cProfile self time by component ({calls} calls; us inflated by cProfile)"
    print_shares(title, seconds, calls / 1e6)
    if args.top:
        print(f"  top {args.top} functions by self time (us per request, calls per request):")
        for (filename, line, name), (_, ncalls, tottime, _, _) in sorted(
            stats.items(), key=lambda kv: -kv[1][2]
        )[: args.top]:
            where = name if filename == "~" else f"{Path(filename).name}:{line}({name})"
            print(f"    {tottime / calls * 1e6:7.2f}  {ncalls / calls:5.1f}  {where[:110]}")


# --- py-spy breakdown ------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")
# Leaf functions of a thread that is waiting, not working.
_IDLE_LEAVES = ("epoll_wait", "epoll_pwait", "poll", "select", "nanosleep", "clock_nanosleep", "futex")
# Stacks of start-up and of the load generator's plumbing, not of requests.
_SETUP_MARKERS = ("RouterApp.start", "router_app", "echo_server", "_find_and_load", "events_config")


def classify_collapsed(lines: Iterable[str]) -> dict[str, float]:
    samples: dict[str, float] = collections.defaultdict(float)
    for raw in lines:
        stack, _, count = raw.rstrip().rpartition(" ")
        frames = stack.split(";")
        leaf = frames[-1].split(" ", 1)[0]
        idle_thread = "thread_run" in stack and leaf == "syscall"  # grpc's poller in a futex wait
        if leaf in _IDLE_LEAVES or idle_thread or any(marker in stack for marker in _SETUP_MARKERS):
            continue
        samples[_sample_component(frames)] += int(count)
    return samples


def _sample_component(frames: list[str]) -> str:
    for frame in reversed(frames):
        match = _FRAME.match(frame)
        if match is None:
            continue
        # py-spy prints paths relative to site-packages ("aiohttp/client.py"): anchor them.
        path, line = "/" + match["path"], int(match["line"] or 0)
        found = component_of(path, line)
        if found is not None:
            return found
    return STDLIB


def print_collapsed(path: Path) -> None:
    with path.open() as lines:
        samples = classify_collapsed(lines)
    total = sum(samples.values())
    print_shares(f"{path}: {total:.0f} busy samples by component", samples)


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
