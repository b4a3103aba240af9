"""What the request-path profile runs besides its load generator: the servers under test (a bare
gRPC echo, a RouterApp) in this process, and the processes they talk to (the simulated provider,
an OTLP sink, the embedded broker), with the CPU pinning that keeps those off the router's core."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import uvloop
from aiohttp import web
from prometheus_client import CollectorRegistry

from bench.overhead_variants import base_router_config
from router_service.app import RouterApp
from router_service.embedded.broker import EmbeddedBroker
from router_service.settings import parse_config
from router_service.sim.presets import preset_config
from router_service.sim.server import SimServer


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


async def otlp_sink(stack: AsyncExitStack, cpu: int | None) -> str:
    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    sink = ctx.Process(target=otlp_sink_main, args=(ports, cpu), daemon=True)
    sink.start()
    stack.callback(sink.terminate)
    return f"http://127.0.0.1:{ports.get(timeout=30)}"


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
