"""The overhead bench's processes: the servers under test and how the load generator reaches
them, the embedded broker and Redis, CPU placement and per-call CPU (bench/overhead.py)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import signal
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.overhead_baseline import spawn_from_tree
from bench.overhead_cells import ClientFactory
from bench.overhead_clients import (
    ROUTER_CALLS,
    aiohttp_raw_client,
    direct_target,
    door_client,
    echo_client,
    httpx_client,
    router_client,
)
from bench.overhead_variants import RouterVariant
from bench.servers import (
    Fleet,
    Server,
    children_cpu_s,
    grpc_health_probe,
    http_probe,
    process_cpu_s,
    wait_ready,
)
from router_service.embedded.broker import EmbeddedBroker
from router_service.embedded.redis_server import EmbeddedRedis


@dataclass
class Endpoints:
    sim: Server
    echo: Server
    routers: dict[str, tuple[RouterVariant, Server]]

    @property
    def completions_url(self) -> str:
        return f"http://127.0.0.1:{self.sim.port}/v1/chat/completions"


def spawn_endpoints(fleet: Fleet, variants: list[RouterVariant]) -> Endpoints:
    """The sim, the echo server and one router per variant, each its own process (not yet ready)."""
    sim = fleet.spawn_sim()
    sim_base_url = f"http://127.0.0.1:{sim.port}/v1"
    return Endpoints(
        sim=sim,
        echo=fleet.spawn_echo(),
        routers={v.name: (v, spawn_variant(fleet, v, sim_base_url)) for v in variants},
    )


def spawn_variant(fleet: Fleet, variant: RouterVariant, sim_base_url: str) -> Server:
    """One router row: from this checkout, or from the baseline tree (overhead_baseline)."""
    config_for_port = functools.partial(variant.config, sim_base_url)
    if variant.tree is not None:
        return spawn_from_tree(fleet, variant.tree, variant.name, config_for_port)
    return fleet.spawn_router(variant.name, config_for_port)


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


def router_cpu_s(endpoints: Endpoints) -> dict[str, float]:
    """CPU seconds used so far by each router process and its running children (a baseline
    tree's event forwarder; today's routers have none)."""
    return {
        name: process_cpu_s(server.proc.pid) + children_cpu_s(server.proc.pid)
        for name, (_, server) in endpoints.routers.items()
    }


def router_cpu_us(endpoints: Endpoints, since: dict[str, float] | None = None) -> dict[str, float]:
    """Router CPU (router_cpu_s) per answered call by variant, read while the routers still run:
    over the whole run (startup included, amortised), or from `since` on (an earlier
    router_cpu_s: startup left out, which two source trees may not share)."""
    cpu: dict[str, float] = {}
    for name, used in router_cpu_s(endpoints).items():
        calls = ROUTER_CALLS.get(endpoints.routers[name][1].port, 0)
        used -= since.get(name, 0.0) if since else 0.0
        cpu[name] = used / calls * 1e6 if calls else math.nan
    return cpu


def event_loop_runner() -> tuple[str, Callable[[Any], Any]]:
    try:
        import uvloop
    except ImportError:
        return "asyncio", asyncio.run
    return "uvloop", uvloop.run


def embedded_broker(enabled: bool, workdir: Path) -> AbstractContextManager[str]:
    """A Tansu broker (its own process) for the telemetry-on row; yields its bootstrap or ""."""
    if not enabled:
        return contextlib.nullcontext("")
    broker = EmbeddedBroker(log_path=workdir / "tansu.log")
    return running(broker.start, broker.kill, lambda: broker.bootstrap)  # memory storage: nothing to keep


def embedded_redis(enabled: bool, workdir: Path) -> AbstractContextManager[str]:
    """A real redis-server (its own process, loopback) for the limits rows; yields its URL or ""."""
    if not enabled:
        return contextlib.nullcontext("")
    server = EmbeddedRedis(log_path=workdir / "redis.log")
    return running(server.start, server.stop, lambda: server.url)


@contextlib.contextmanager
def running(
    start: Callable[[], Coroutine[Any, Any, None]],
    stop: Callable[[], Coroutine[Any, Any, None]],
    address: Callable[[], str],
) -> Iterator[str]:
    """A child server started (on a loop of its own: the bench's loop is not running yet) and
    stopped however the block ends; yields its address, known once started."""
    asyncio.run(start())
    try:
        yield address()
    finally:
        asyncio.run(stop())


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
