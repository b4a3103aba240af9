"""Router overhead benchmark: the router against a bare gRPC echo and a direct HTTP call, in one run.

    .venv/bin/python bench/overhead.py                   # full run (~1-2 min)
    .venv/bin/python bench/overhead.py --quick           # ~1/5 of the requests
    .venv/bin/python bench/overhead.py --router-config-extra 'telemetry: {...}'   # one more router row
    .venv/bin/python bench/overhead.py --door-only       # the OpenAI door vs gRPC, 20 short rounds
    .venv/bin/python bench/overhead.py --limits-only     # budgets + rate limits on vs off, 20 short rounds

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
                       counters: in the in-process store, or in a real redis-server on loopback (one
                       Lua round trip to admit, one to settle, the settle off the caller's path)

`http/httpx` and `http/aiohttp` are built by the router's own `make_http_client`, so they measure the
client the router uses. The targets of one load shape are measured interleaved, in rounds (default 5,
rotating order), so a burst of noise on the shared machine hits all of them alike; a cell's req/s is its
completed requests over its own active time. Then an open-loop run per router variant at half its
measured c=32 rate, against the direct call with the same transport at the same rate (latency counted
from the scheduled send time, so queueing is included). Derived rows are checked against the
"Performance budget" of DESIGN.md: PASS / MISS, or INVALID when a cell behind the number had errors
or an open-loop cell could not sustain the offered rate.

The machine is shared and noisy: compare rows of one run, not runs. Writes bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import datetime as dt
import functools
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

if __package__ in (None, ""):
    # Run as `python bench/overhead.py`: put the repository root, not bench/, first on the path, so
    # that `bench.*` imports resolve (and bench/consumers.py cannot shadow the consumers package).
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import aiohttp
import grpc
import httpx
import yaml

from bench.load import Call, Load, Sample, closed_loop, open_loop, percentile_ms
from bench.servers import (
    Fleet,
    Server,
    free_port,
    grpc_health_probe,
    http_probe,
    process_cpu_s,
    wait_ready,
)
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.config_schema import HttpConfig
from router_service.embedded.broker import EmbeddedBroker
from router_service.embedded.redis_server import EmbeddedRedis
from router_service.identity import key_secret
from router_service.identity.model import Identity
from router_service.identity.records import Credential, KeyRecord
from router_service.keystore.file_store import write_key_file
from router_service.providers.http import make_http_client

BENCH_DIR = Path(__file__).resolve().parent
ECHO_METHOD = "/bench.v1.Echo/Echo"
DEFAULT_OUTPUT = BENCH_DIR / "results" / "overhead.json"
TELEMETRY_OUTPUT = BENCH_DIR / "results" / "telemetry_cost.json"
DOOR_OUTPUT = BENCH_DIR / "results" / "openai_door_overhead.json"
LIMITS_OUTPUT = BENCH_DIR / "results" / "limits_overhead.json"
ROUNDS_DEFAULT = 5

MODEL = "bench-model"
API_KEY = "bench-key"
PROMPT = "Hello router"
ECHO_PAYLOAD = b"x" * 64
# The body the router's OpenAI adapter sends for a CompleteRequest with one user message.
HTTP_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}).encode()
# What a caller of the router's OpenAI door sends for the gRPC row's request: automatic routing
# under the default policy (`router`), one user message.
DOOR_BODY = json.dumps({"model": "router", "messages": [{"role": "user", "content": PROMPT}]}).encode()
DOOR_HEADERS = {"content-type": "application/json"}
HTTP_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {API_KEY}"}

CALL_TIMEOUT_S = 10.0  # per request; a stuck request fails the cell instead of hanging the bench
CELL_TIMEOUT_S = 300.0  # per target and load shape, warm-up included
# An open-loop cell that completed less than this fraction of its offered rate was overloaded:
# its latencies measure a queue, not the target, and cannot back a verdict.
SUSTAINED_FRACTION = 0.9

ClientFactory = Callable[[], AbstractAsyncContextManager[Call]]


# --- parameters and results ---------------------------------------------------------------------


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


@dataclass
class BudgetRow:
    """One derived number, checked against DESIGN.md's budget where there is one."""

    variant: str
    metric: str
    value: float
    unit: str
    target: str  # "< 0.5 ms", ">= 0.5x", "" for information only
    verdict: str  # PASS | MISS | INVALID | info
    basis: str  # how the value was computed


@dataclass(frozen=True)
class Budget:
    metric: str
    unit: str
    limit: float
    higher_is_better: bool

    @property
    def target(self) -> str:
        return f"{'>=' if self.higher_is_better else '<'} {self.limit:g} {self.unit}"

    def verdict(self, value: float) -> str:
        ok = value >= self.limit if self.higher_is_better else value < self.limit
        return "PASS" if ok else "MISS"


OVERHEAD_P50 = Budget("overhead p50 @c=1", "ms", 0.5, higher_is_better=False)
OVERHEAD_P99 = Budget("overhead p99 @c=1", "ms", 1.5, higher_is_better=False)
THROUGHPUT_VS_ECHO = Budget("rps @c=32 / echo rps", "x", 0.5, higher_is_better=True)
OPEN_LOOP_ADDED_P99 = Budget("open-loop added p99", "ms", 3.0, higher_is_better=False)
TELEMETRY_COST = Budget("telemetry throughput cost", "%", 5.0, higher_is_better=False)
# Issue 16: the HTTP door against the gRPC path of the same router config, same workload.
DOOR_ADDED_P50 = Budget("door p50 @c=1 - gRPC", "ms", 0.2, higher_is_better=False)
DOOR_THROUGHPUT = Budget("door rps @c=32 / gRPC", "x", 0.8, higher_is_better=True)
LIMITS_ADDED_P50 = Budget("limits p50 @c=1 - off", "ms", 0.3, higher_is_better=False)
LIMITS_THROUGHPUT_LOSS = Budget("limits tput loss @c=32", "%", 10.0, higher_is_better=False)


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


# --- clients: each yields an async `call()` that does one request and raises on failure ----------


@asynccontextmanager
async def echo_client(port: int) -> AsyncIterator[Call]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        echo = channel.unary_unary(ECHO_METHOD)

        async def call() -> None:
            await echo(ECHO_PAYLOAD, timeout=CALL_TIMEOUT_S)

        yield call


# Calls answered per router port, for CPU per request (a machine-noise-proof cost measure).
ROUTER_CALLS: dict[int, int] = {}


@asynccontextmanager
async def router_client(port: int, metadata: tuple[tuple[str, str], ...] = ()) -> AsyncIterator[Call]:
    chat = pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content=PROMPT)])
    request = pb.CompleteRequest(chat=chat)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        complete = pb_grpc.RouterServiceStub(channel).Complete

        async def call() -> None:
            response = await complete(request, timeout=CALL_TIMEOUT_S, metadata=metadata or None)
            if not response.message.content:
                raise RuntimeError("empty answer from the router")
            ROUTER_CALLS[port] = ROUTER_CALLS.get(port, 0) + 1

        yield call


@asynccontextmanager
async def httpx_client(url: str, transport: Literal["aiohttp", "httpx"]) -> AsyncIterator[Call]:
    """The router's own upstream client (`make_http_client`) with the given transport."""
    async with make_http_client(HttpConfig(transport=transport)) as client:

        async def call() -> None:
            response = await client.post(url, content=HTTP_BODY, headers=HTTP_HEADERS)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

        yield call


@asynccontextmanager
async def aiohttp_raw_client(url: str) -> AsyncIterator[Call]:
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call() -> None:
            async with session.post(url, data=HTTP_BODY, headers=HTTP_HEADERS) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")

        yield call


@asynccontextmanager
async def door_client(door_port: int, router_port: int) -> AsyncIterator[Call]:
    """The OpenAI door with a lean client (a raw aiohttp session, keep-alive): what the door adds,
    not what an SDK adds. Calls are counted under the router's gRPC port, for CPU per request."""
    url = f"http://127.0.0.1:{door_port}/v1/chat/completions"
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call() -> None:
            async with session.post(url, data=DOOR_BODY, headers=DOOR_HEADERS) as response:
                body = await response.read()
                if response.status != 200 or b'"content"' not in body:
                    raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
            ROUTER_CALLS[router_port] = ROUTER_CALLS.get(router_port, 0) + 1

        yield call


def direct_target(transport: str) -> str:
    return f"http/{transport}"


# --- router configs: one function builds them, variants add to it --------------------------------


@dataclass(frozen=True)
class RouterVariant:
    """One router row. `extra` is deep-merged into the base config (e.g. Kafka telemetry on)."""

    name: str
    extra: dict[str, Any]
    metadata: tuple[tuple[str, str], ...] = ()  # sent with every call (the auth variant's key)
    door_port: int = 0  # measured through its OpenAI HTTP door on this port instead of gRPC

    def config(self, sim_base_url: str, port: int) -> dict[str, Any]:
        return deep_merge(base_router_config(sim_base_url, port), self.extra)

    @property
    def transport(self) -> str:
        return str(deep_merge({"http": {"transport": "aiohttp"}}, self.extra)["http"]["transport"])


def base_router_config(sim_base_url: str, port: int) -> dict[str, Any]:
    return {
        "server": {"listen": f"127.0.0.1:{port}", "workers": 1, "grace_period_s": 1},
        "metrics": {"listen": ""},
        "http": {"transport": "aiohttp"},
        "providers": {"sim": {"kind": "openai", "base_url": sim_base_url, "api_key": API_KEY}},
        "models": [
            {
                "name": MODEL,
                "provider": "sim",
                "price_per_mtok": {"input": "0.15", "output": "0.60"},
                "capabilities": ["streaming"],
            }
        ],
        "policies": {"default": {"models": [MODEL]}},
    }


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


EVENTS_VARIANT = "router/aiohttp+events"
VOLATILE_VARIANT = "router/aiohttp+events-volatile"  # events.durable: false, for the log's cost
PLAIN = "router/aiohttp"  # what EVENTS_VARIANT is compared with


def events_extra(bootstrap: str, spool_dir: Path, durable: bool = True) -> dict[str, Any]:
    """Telemetry on: every request publishes its decision, attempt and completion events, each
    written to the spool before the call answers (`durable`, the default) or kept in memory until
    the broker acks it (`durable=False`)."""
    return {
        "http": {"transport": "aiohttp"},
        "events": {
            "bootstrap_servers": bootstrap,
            "enable_idempotence": False,  # the embedded Tansu broker lacks it
            "create_topic_partitions": 3,
            "spool_dir": str(spool_dir),
            "durable": durable,
        },
    }


DOOR_VARIANT = "door/aiohttp"


def door_variant() -> RouterVariant:
    """router/aiohttp's config with the OpenAI door on a free port; its calls go through the door."""
    port = free_port()
    extra = {"http": {"transport": "aiohttp"}, "server": {"openai_http": {"listen": f"127.0.0.1:{port}"}}}
    return RouterVariant(DOOR_VARIANT, extra, door_port=port)


LIMITS_VARIANT = "router/aiohttp+limits"
LIMITS_REDIS_VARIANT = "router/aiohttp+limits-redis"


def limits_extra(redis_url: str = "") -> dict[str, Any]:
    """Governance on for every call (auth is off, so the global level is the one that binds): a
    budget and requests/tokens/concurrency limits far above what the run uses, so every call
    reserves and settles three counters and none is refused."""
    store: dict[str, Any] = {"store": "memory"}
    if redis_url:
        store = {"store": "redis", "redis_url": redis_url, "store_timeout_s": 1.0}
    return {
        "http": {"transport": "aiohttp"},
        "limits": {
            **store,
            "budgets": [{"level": "global", "usd": "9000000", "period": "month"}],
            "rate_limits": [
                {
                    "level": "global",
                    "requests_per_minute": 10**9,
                    "tokens_per_minute": 10**12,
                    "concurrent": 10**6,
                }
            ],
        },
    }


AUTH_VARIANT = "router/aiohttp+auth"


def auth_variant(tmp: Path) -> RouterVariant:
    """`auth.mode: required` over a key file of 1,000 keys; every call presents one of them (the
    same one: the verified-secret cache is warm after the first call, as for a real caller)."""
    records, secret = [], ""
    for i in range(1000):
        key_id = f"k_bench_{i}"
        candidate = key_secret.new_secret(key_id)
        secret = secret or candidate
        credential = Credential(key_secret.hash_secret(candidate))
        records.append(KeyRecord(Identity(key_id=key_id, team="bench", customer="bench"), (credential,)))
    path = tmp / "keys.yaml"
    write_key_file(path, records)
    extra = {"http": {"transport": "aiohttp"}, "auth": {"mode": "required", "keys_file": str(path)}}
    return RouterVariant(AUTH_VARIANT, extra, (("authorization", f"Bearer {secret}"),))


def router_variants(
    extra_yaml: str | None,
    extra_name: str,
    events: dict[str, Any] | None,
    telemetry_only: bool = False,
    auth: RouterVariant | None = None,
    door: RouterVariant | None = None,
) -> list[RouterVariant]:
    variants = [RouterVariant(PLAIN, {"http": {"transport": "aiohttp"}})]
    if not telemetry_only:
        variants.append(RouterVariant("router/httpx", {"http": {"transport": "httpx"}}))
        if auth is not None:
            variants.append(auth)
        if door is not None:
            variants.append(door)
    if events is not None:
        variants.append(RouterVariant(EVENTS_VARIANT, events))
        spool = f"{events['events']['spool_dir']}-volatile"  # each router locks its own spool
        volatile = deep_merge(events, {"events": {"durable": False, "spool_dir": spool}})
        variants.append(RouterVariant(VOLATILE_VARIANT, volatile))
    if extra_yaml:
        text = Path(extra_yaml[1:]).read_text() if extra_yaml.startswith("@") else extra_yaml
        extra = yaml.safe_load(text) or {}
        if not isinstance(extra, dict):
            raise SystemExit("--router-config-extra must be a YAML mapping")
        variants.append(RouterVariant(extra_name, extra))
    return variants


# --- the run ----------------------------------------------------------------------------------------


@dataclass
class Endpoints:
    sim: Server
    echo: Server
    routers: dict[str, tuple[RouterVariant, Server]]

    @property
    def completions_url(self) -> str:
        return f"http://127.0.0.1:{self.sim.port}/v1/chat/completions"


def closed_loop_targets(endpoints: Endpoints) -> dict[str, ClientFactory]:
    url = endpoints.completions_url
    targets: dict[str, ClientFactory] = {
        "echo": lambda: echo_client(endpoints.echo.port),
        direct_target("httpx"): lambda: httpx_client(url, "httpx"),
        direct_target("aiohttp"): lambda: httpx_client(url, "aiohttp"),
        direct_target("aiohttp-raw"): lambda: aiohttp_raw_client(url),
    }
    for name, (variant, server) in endpoints.routers.items():
        if variant.door_port:
            targets[name] = functools.partial(door_client, variant.door_port, server.port)
        else:
            targets[name] = functools.partial(router_client, server.port, variant.metadata)
    return targets


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


async def start_and_wait(endpoints: Endpoints) -> None:
    await wait_ready(endpoints.sim, http_probe(f"http://127.0.0.1:{endpoints.sim.port}/healthz"))
    await wait_ready(endpoints.echo, grpc_health_probe(endpoints.echo.port))
    for _, server in endpoints.routers.values():
        await wait_ready(server, grpc_health_probe(server.port))


def pin_routers(endpoints: Endpoints) -> None:
    """--pin-router: each router process on CPU 0, alone; the load generator, the sim, the echo
    server and the broker stay on CPU 1 (run() put this process there before
    starting them, so they inherited it). A production router has its cores and the broker is
    elsewhere: this measures what telemetry costs a router's own throughput."""
    for _, server in endpoints.routers.values():
        os.sched_setaffinity(server.proc.pid, {0})


async def measure(
    endpoints: Endpoints,
    params: Params,
    telemetry_only: bool = False,
    pin: bool = False,
    door_only: bool = False,
    limits_only: bool = False,
) -> tuple[list[CellResult], list[CellResult]]:
    await start_and_wait(endpoints)
    if pin:
        pin_routers(endpoints)
    targets = closed_loop_targets(endpoints)
    closed: list[CellResult] = []
    opened: list[CellResult] = []
    if telemetry_only:  # the events routers and the plain one at c=32, nothing else
        names = (PLAIN, EVENTS_VARIANT, VOLATILE_VARIANT)
        closed = await run_closed({name: targets[name] for name in names}, 32, params)
    elif door_only:  # the door and the gRPC path of the same config, nothing else
        for concurrency in params.concurrencies:
            closed += await run_closed(
                {name: targets[name] for name in (PLAIN, DOOR_VARIANT)}, concurrency, params
            )
    elif limits_only:  # governance off, in process, on Redis: the same config otherwise
        for concurrency in params.concurrencies:
            names = (PLAIN, LIMITS_VARIANT, LIMITS_REDIS_VARIANT)
            closed += await run_closed({name: targets[name] for name in names}, concurrency, params)
    else:
        for concurrency in params.concurrencies:
            closed += await run_closed(targets, concurrency, params)
        saturated = max(params.concurrencies)
        for name, (variant, _) in endpoints.routers.items():
            rate = find(closed, name, saturated).rps / 2
            direct = direct_target(variant.transport)
            opened += await run_open({direct: targets[direct], name: targets[name]}, rate, params)
    for name, (_, server) in endpoints.routers.items():
        calls = ROUTER_CALLS.get(server.port, 0)
        ROUTER_CPU_US[name] = process_cpu_s(server.proc.pid) / calls * 1e6 if calls else math.nan
    return closed, opened


# Router process CPU per answered call, over the whole run (startup included, amortised).
ROUTER_CPU_US: dict[str, float] = {}


# --- derived rows -----------------------------------------------------------------------------------


def find(cells: list[CellResult], target: str, concurrency: int | None = None) -> CellResult:
    for cell in cells:
        if cell.target == target and (concurrency is None or cell.concurrency == concurrency):
            return cell
    raise KeyError((target, concurrency))


def cell_problem(cell: CellResult) -> str:
    """Why a cell cannot back a verdict ("" when it can)."""
    if cell.errors:
        return f"{cell.target} had {cell.errors} errors"
    if cell.offered_rps and cell.rps < SUSTAINED_FRACTION * cell.offered_rps:
        return f"{cell.target} did not sustain {cell.offered_rps:.0f} req/s ({cell.rps:.0f} done/s)"
    return ""


def budget_row(variant: str, budget: Budget, value: float, basis: str, *cells: CellResult) -> BudgetRow:
    problems = [problem for problem in map(cell_problem, cells) if problem]
    if problems or math.isnan(value):
        verdict, basis = "INVALID", "; ".join([basis, *problems])
    else:
        verdict = budget.verdict(value)
    return BudgetRow(variant, budget.metric, value, budget.unit, budget.target, verdict, basis)


def info_row(variant: str, metric: str, value: float, unit: str, basis: str) -> BudgetRow:
    return BudgetRow(variant, metric, value, unit, "", "info", basis)


def derive(
    variants: list[RouterVariant], closed: list[CellResult], opened: list[CellResult]
) -> list[BudgetRow]:
    echo32 = find(closed, "echo", 32)
    rows: list[BudgetRow] = []
    for variant in variants:
        direct = direct_target(variant.transport)
        router1, direct1 = find(closed, variant.name, 1), find(closed, direct, 1)
        router32, direct32 = find(closed, variant.name, 32), find(closed, direct, 32)
        router_ol, direct_ol = find(opened, variant.name), find(opened, direct)
        vs = f"{variant.name} - {direct}"
        ratio_basis = f"{variant.name} / {direct}"
        rows += [
            budget_row(variant.name, OVERHEAD_P50, router1.p50_ms - direct1.p50_ms, vs, router1, direct1),
            budget_row(variant.name, OVERHEAD_P99, router1.p99_ms - direct1.p99_ms, vs, router1, direct1),
            budget_row(
                variant.name,
                THROUGHPUT_VS_ECHO,
                router32.rps / echo32.rps,
                f"{variant.name} / echo",
                router32,
                echo32,
            ),
            budget_row(
                variant.name,
                OPEN_LOOP_ADDED_P99,
                router_ol.p99_ms - direct_ol.p99_ms,
                f"{vs} at {router_ol.offered_rps:.0f} req/s",
                router_ol,
                direct_ol,
            ),
            info_row(variant.name, "rps @c=32 / direct rps", router32.rps / direct32.rps, "x", ratio_basis),
            info_row(variant.name, "overhead p50 @c=32", router32.p50_ms - direct32.p50_ms, "ms", vs),
        ]
    for variant in variants:
        cpu = ROUTER_CPU_US.get(variant.name, math.nan)
        rows.append(info_row(variant.name, "router CPU per request", cpu, "us", "router process CPU / calls"))
    if any(v.name == AUTH_VARIANT for v in variants):
        added = ROUTER_CPU_US.get(AUTH_VARIANT, math.nan) - ROUTER_CPU_US.get(PLAIN, math.nan)
        rows.append(info_row(AUTH_VARIANT, "auth CPU per request", added, "us", f"{AUTH_VARIANT} - {PLAIN}"))
        auth32, plain32 = find(closed, AUTH_VARIANT, 32), find(closed, PLAIN, 32)
        rows.append(info_row(AUTH_VARIANT, "rps @c=32 / plain", auth32.rps / plain32.rps, "x", f"vs {PLAIN}"))
    if any(v.name == DOOR_VARIANT for v in variants):
        rows += door_rows(closed)
    if any(v.name == EVENTS_VARIANT for v in variants):
        rows += telemetry_rows(closed)
    return rows


def door_rows(closed: list[CellResult]) -> list[BudgetRow]:
    """The OpenAI door against the gRPC path (PLAIN: the same config without the door), same
    request, same sim: the door's added p50 at c=1 minus the gRPC path's is door p50 - gRPC p50,
    as both are measured against the same direct call. Throughput: the median over rounds of
    door / gRPC req/s, each round's two cells measured back to back (the pooled ratio too)."""
    door1, grpc1 = find(closed, DOOR_VARIANT, 1), find(closed, PLAIN, 1)
    door32, grpc32 = find(closed, DOOR_VARIANT, 32), find(closed, PLAIN, 32)
    paired = [d / g for d, g in zip(door32.round_rps, grpc32.round_rps, strict=False) if g]
    ratio = statistics.median(paired) if paired else door32.rps / grpc32.rps
    door_cpu, grpc_cpu = ROUTER_CPU_US.get(DOOR_VARIANT, math.nan), ROUTER_CPU_US.get(PLAIN, math.nan)
    return [
        budget_row(
            DOOR_VARIANT,
            DOOR_ADDED_P50,
            door1.p50_ms - grpc1.p50_ms,
            f"{DOOR_VARIANT} - {PLAIN}",
            door1,
            grpc1,
        ),
        info_row(DOOR_VARIANT, "door p99 @c=1 - gRPC", door1.p99_ms - grpc1.p99_ms, "ms", f"vs {PLAIN}"),
        budget_row(
            DOOR_VARIANT,
            DOOR_THROUGHPUT,
            ratio,
            f"median of {len(paired)} paired rounds of {DOOR_VARIANT} / {PLAIN} rps @c=32",
            door32,
            grpc32,
        ),
        info_row(DOOR_VARIANT, "door/gRPC rps, pooled", door32.rps / grpc32.rps, "x", "all rounds at once"),
        info_row(DOOR_VARIANT, "door CPU - gRPC per req", door_cpu - grpc_cpu, "us", f"vs {PLAIN}"),
    ]


def limits_rows(closed: list[CellResult]) -> list[BudgetRow]:
    """What budgets and rate limits cost on the request path, per store: the added p50 at c=1
    (the admit's store round trip is on the caller's path, the settle is not) and the c=32
    throughput loss, the median over rounds of 1 - (limits-on req/s / off req/s), each round's
    cells measured back to back (see telemetry_rows for why pairing)."""
    off1, off32 = find(closed, PLAIN, 1), find(closed, PLAIN, 32)
    off_cpu = ROUTER_CPU_US.get(PLAIN, math.nan)
    rows: list[BudgetRow] = []
    for name in (LIMITS_VARIANT, LIMITS_REDIS_VARIANT):
        on1, on32 = find(closed, name, 1), find(closed, name, 32)
        paired = [1 - on / off for on, off in zip(on32.round_rps, off32.round_rps, strict=False) if off]
        loss = statistics.median(paired) if paired else 1 - on32.rps / off32.rps
        rows += [
            budget_row(name, LIMITS_ADDED_P50, on1.p50_ms - off1.p50_ms, f"{name} - {PLAIN}", on1, off1),
            info_row(name, "limits p99 @c=1 - off", on1.p99_ms - off1.p99_ms, "ms", f"vs {PLAIN}"),
            budget_row(
                name,
                LIMITS_THROUGHPUT_LOSS,
                loss * 100,
                f"median of {len(paired)} paired rounds of 1 - {name} / {PLAIN} rps @c=32",
                on32,
                off32,
            ),
            info_row(name, "limits tput loss, pooled", (1 - on32.rps / off32.rps) * 100, "%", "all rounds"),
            info_row(
                name,
                "limits CPU per request",
                ROUTER_CPU_US.get(name, math.nan) - off_cpu,
                "us",
                f"vs {PLAIN}",
            ),
        ]
    return rows


def telemetry_rows(closed: list[CellResult]) -> list[BudgetRow]:
    """What publishing events costs: router CPU per request and c=32 throughput, events on vs off,
    and what the durable log (events.durable) costs of that: events on vs on without it.

    The throughput cost is the median over rounds of 1 - (events-on req/s / events-off req/s),
    each round's two cells measured back to back: the shared machine's speed drifts by more than
    the effect between rounds, and pairing cancels that drift where pooling all rounds does not.
    The pooled figure is printed too."""
    events_cpu, plain_cpu = ROUTER_CPU_US.get(EVENTS_VARIANT, math.nan), ROUTER_CPU_US.get(PLAIN, math.nan)
    volatile_cpu = ROUTER_CPU_US.get(VOLATILE_VARIANT, math.nan)
    with_events, without = find(closed, EVENTS_VARIANT, 32), find(closed, PLAIN, 32)
    volatile = find(closed, VOLATILE_VARIANT, 32)
    paired = [1 - on / off for on, off in zip(with_events.round_rps, without.round_rps, strict=False) if off]
    paired_log = [
        1 - on / off for on, off in zip(with_events.round_rps, volatile.round_rps, strict=False) if off
    ]
    pooled = 1 - with_events.rps / without.rps
    cost = statistics.median(paired) if paired else pooled
    basis = f"median of {len(paired)} paired rounds of 1 - {EVENTS_VARIANT} / {PLAIN} rps @c=32"
    return [
        info_row(
            EVENTS_VARIANT,
            "telemetry CPU cost",
            (events_cpu / plain_cpu - 1) * 100,
            "%",
            f"router CPU per request vs {PLAIN}",
        ),
        info_row(
            EVENTS_VARIANT,
            "durable log CPU per req",
            events_cpu - volatile_cpu,
            "us",
            f"router CPU per request vs {VOLATILE_VARIANT}",
        ),
        info_row(
            EVENTS_VARIANT,
            "durable log tput cost",
            statistics.median(paired_log) * 100 if paired_log else math.nan,
            "%",
            f"median of {len(paired_log)} paired rounds of 1 - {EVENTS_VARIANT} / {VOLATILE_VARIANT}",
        ),
        info_row(EVENTS_VARIANT, "telemetry tput cost, pooled", pooled * 100, "%", "all rounds at once"),
        budget_row(EVENTS_VARIANT, TELEMETRY_COST, cost * 100, basis, with_events, without),
    ]


# --- output -----------------------------------------------------------------------------------------


def format_cells(title: str, cells: list[CellResult]) -> str:
    header = (
        f"{'target':<22} {'conc':>5} {'offered':>8} {'n':>6} {'err':>4} "
        f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>9}"
    )
    lines = [title, header, "-" * len(header)]
    for c in cells:
        offered = f"{c.offered_rps:.0f}" if c.offered_rps else "-"
        lines.append(
            f"{c.target:<22} {c.concurrency:>5} {offered:>8} {c.requests:>6} {c.errors:>4} "
            f"{c.p50_ms:>8.3f} {c.p90_ms:>8.3f} {c.p99_ms:>8.3f} {c.max_ms:>8.3f} {c.rps:>9.0f}"
        )
    lines += [f"  {c.target} c={c.concurrency}: first error: {c.first_error}" for c in cells if c.errors]
    return "\n".join(lines)


def format_budget(rows: list[BudgetRow]) -> str:
    header = f"{'variant':<18} {'metric':<24} {'value':>9} {'unit':<4} {'target':<10} {'verdict':<8} basis"
    lines = ["Derived (DESIGN.md performance budget)", header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.variant:<18} {r.metric:<24} {r.value:>9.3f} {r.unit:<4} {r.target:<10} {r.verdict:<8} "
            f"{r.basis}"
        )
    return "\n".join(lines)


def machine_info(started: dt.datetime, loadavg_before: tuple[float, ...], loop_name: str) -> dict[str, Any]:
    return {
        "date_utc": started.isoformat(timespec="seconds"),  # when the run started
        "duration_s": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_before": loadavg_before,
        "loadavg_after": os.getloadavg(),
        "event_loop": loop_name,
        "versions": {"grpcio": grpc.__version__, "httpx": httpx.__version__, "aiohttp": aiohttp.__version__},
        "git_head": git_head(),
    }


def git_head() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    return ""


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")


# --- entry point ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 1/5 of the default requests")
    parser.add_argument("--requests", type=int, help="requests per cell (both concurrencies)")
    parser.add_argument("--warmup", type=int, help="warm-up requests per cell (default 200, --quick 50)")
    parser.add_argument("--open-loop-seconds", type=float, help="open-loop duration (default 5, --quick 2)")
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS_DEFAULT, help="interleaved rounds per cell (default 5)"
    )
    parser.add_argument(
        "--router-config-extra",
        metavar="YAML",
        help="YAML mapping (or @file) deep-merged into the router config as one more router row",
    )
    parser.add_argument("--router-config-extra-name", default="router/extra", help="label of that row")
    parser.add_argument(
        "--no-events", action="store_true", help="skip the telemetry-on row (no embedded Kafka broker)"
    )
    parser.add_argument(
        "--pin-router",
        action="store_true",
        help="routers alone on CPU 0, everything else (broker, load, sim) on CPU 1",
    )
    parser.add_argument(
        "--telemetry-only",
        action="store_true",
        help=f"only {PLAIN} and {EVENTS_VARIANT} at c=32: what events cost, in more, shorter rounds "
        "(default 20 rounds of 1000 requests; writes bench/results/telemetry_cost.json)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="with --telemetry-only: repeat with fresh processes, report medians",
    )
    parser.add_argument("--no-auth", action="store_true", help=f"skip the {AUTH_VARIANT} row (virtual keys)")
    parser.add_argument("--no-door", action="store_true", help=f"skip the {DOOR_VARIANT} row (OpenAI HTTP)")
    parser.add_argument(
        "--door-only",
        action="store_true",
        help=f"only {DOOR_VARIANT} and {PLAIN} at c=1 and c=32, closed loop, in more, shorter rounds "
        "(default 20; writes bench/results/openai_door_overhead.json)",
    )
    parser.add_argument(
        "--limits-only",
        action="store_true",
        help=f"only {PLAIN}, {LIMITS_VARIANT} and {LIMITS_REDIS_VARIANT} (a real redis-server on loopback) "
        "at c=1 and c=32, closed loop, in more, shorter rounds (default 20; writes "
        "bench/results/limits_overhead.json)",
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.telemetry_only and args.no_events:
        parser.error("--telemetry-only needs the events row")
    if args.runs > 1 and not args.telemetry_only:
        parser.error("--runs is for --telemetry-only")
    if args.door_only and (args.telemetry_only or args.no_door):
        parser.error("--door-only measures the door alone (not with --telemetry-only or --no-door)")
    if args.door_only:
        args.no_events = args.no_auth = True  # no broker, no key file: neither row is measured
    if args.limits_only and (args.telemetry_only or args.door_only):
        parser.error("--limits-only measures governance alone")
    if args.limits_only:
        args.no_events = args.no_auth = args.no_door = True
    if args.output is None:
        args.output = (
            TELEMETRY_OUTPUT
            if args.telemetry_only
            else DOOR_OUTPUT
            if args.door_only
            else LIMITS_OUTPUT
            if args.limits_only
            else DEFAULT_OUTPUT
        )
    return args


def params_from(args: argparse.Namespace) -> Params:
    scale = 5 if args.quick else 1
    if args.telemetry_only:
        rounds = args.rounds if args.rounds != ROUNDS_DEFAULT else 20
        return Params(
            requests_c1=0,
            requests_c32=args.requests or rounds * 1000 // scale,
            warmup=args.warmup if args.warmup is not None else 500,
            open_loop_s=0.0,
            rounds=max(1, rounds),
            concurrencies=(32,),
        )
    if args.door_only or args.limits_only:
        rounds = args.rounds if args.rounds != ROUNDS_DEFAULT else 20
        return Params(
            requests_c1=args.requests or rounds * 100 // scale,
            requests_c32=args.requests or rounds * 400 // scale,
            warmup=args.warmup if args.warmup is not None else 200,
            open_loop_s=0.0,
            rounds=max(1, rounds),
        )
    return Params(
        requests_c1=args.requests or 1000 // scale,
        requests_c32=args.requests or 2000 // scale,
        warmup=args.warmup if args.warmup is not None else (50 if args.quick else 200),
        open_loop_s=args.open_loop_seconds or (2.0 if args.quick else 5.0),
        rounds=max(1, args.rounds),
    )


def event_loop_runner() -> tuple[str, Callable[[Any], Any]]:
    try:
        import uvloop
    except ImportError:
        return "asyncio", asyncio.run
    return "uvloop", uvloop.run


@contextlib.contextmanager
def embedded_broker(enabled: bool, workdir: Path) -> Iterator[str]:
    """A Tansu broker (its own process) for the telemetry-on row; yields its bootstrap or ""."""
    if not enabled:
        yield ""
        return
    broker = EmbeddedBroker(log_path=workdir / "tansu.log")
    asyncio.run(broker.start())
    try:
        yield broker.bootstrap
    finally:
        asyncio.run(broker.kill())  # memory storage: nothing to keep


@contextlib.contextmanager
def embedded_redis(enabled: bool, workdir: Path) -> Iterator[str]:
    """A real redis-server (its own process, loopback) for the limits rows; yields its URL or ""."""
    if not enabled:
        yield ""
        return
    server = EmbeddedRedis(log_path=workdir / "redis.log")
    asyncio.run(server.start())
    try:
        yield server.url
    finally:
        asyncio.run(server.stop())


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C so that the servers are still stopped."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> dict[str, Any]:
    params = params_from(args)
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
        events = events_extra(bootstrap, Path(tmp) / "spool") if bootstrap else None
        auth = None if args.no_auth else auth_variant(Path(tmp))
        door = None if args.no_door else door_variant()
        variants = router_variants(
            args.router_config_extra, args.router_config_extra_name, events, args.telemetry_only, auth, door
        )
        if args.door_only:
            variants = [v for v in variants if v.name in (PLAIN, DOOR_VARIANT)]
        if args.limits_only:
            variants = [v for v in variants if v.name == PLAIN] + [
                RouterVariant(LIMITS_VARIANT, limits_extra()),
                RouterVariant(LIMITS_REDIS_VARIANT, limits_extra(redis_url)),
            ]
        sim = fleet.spawn_sim()
        sim_base_url = f"http://127.0.0.1:{sim.port}/v1"
        endpoints = Endpoints(
            sim=sim,
            echo=fleet.spawn_echo(),
            routers={
                v.name: (v, fleet.spawn_router(v.name, functools.partial(v.config, sim_base_url)))
                for v in variants
            },
        )
        closed, opened = run_loop(
            measure(endpoints, params, args.telemetry_only, args.pin_router, args.door_only, args.limits_only)
        )
    if args.telemetry_only:
        budget = telemetry_rows(closed)
    elif args.door_only:
        budget = door_rows(closed)
    elif args.limits_only:
        budget = limits_rows(closed)
    else:
        budget = derive(variants, closed, opened)
    return {
        "benchmark": "router overhead",
        "machine": machine_info(started, loadavg_before, loop_name),
        "params": asdict(params),
        "options": {"pin_router": args.pin_router},
        "router_variants": [{"name": v.name, "transport": v.transport, "extra": v.extra} for v in variants],
        "closed_loop": [asdict(c) for c in closed],
        "open_loop": [asdict(c) for c in opened],
        "budget": [asdict(r) for r in budget],
    }


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"router overhead benchmark  {m['date_utc']}  cpus={m['cpu_count']}  python {m['python']}  "
        f"loop={m['event_loop']}  load {m['loadavg_before'][0]:.2f} -> {m['loadavg_after'][0]:.2f}"
    )
    print(f"params: {report['params']}\n")
    print(format_cells("Closed loop", [CellResult(**c) for c in report["closed_loop"]]), end="\n\n")
    opened = [CellResult(**c) for c in report["open_loop"]]
    print(format_cells("Open loop (half the router's c=32 rate)", opened))
    print()
    print(format_budget([BudgetRow(**r) for r in report["budget"]]))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
                progress(f"  {row['metric']:<28} {row['value']:7.2f} {row['unit']}  {row['verdict']}")
    summary = []
    for metric, first in [(r["metric"], r) for r in reports[0]["budget"]]:
        rows = [row for report in reports for row in report["budget"] if row["metric"] == metric]
        values = [row["value"] for row in rows]
        value = statistics.median(values)
        if any(row["verdict"] == "INVALID" for row in rows):
            verdict = "INVALID"  # a run had errors: its number cannot back a verdict
        elif metric == TELEMETRY_COST.metric:
            verdict = TELEMETRY_COST.verdict(value)
        else:
            verdict = "info"
        summary.append(
            {**first, "value": value, "verdict": verdict, "basis": f"median of {len(values)} runs"}
        )
        print(
            f"{metric:<28} median {value:6.2f} {first['unit']}  {verdict:<5} "
            f"runs: {', '.join(f'{v:.1f}' for v in values)}"
        )
    write_json(args.output, {"benchmark": "telemetry cost", "runs": reports, "summary": summary})
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
