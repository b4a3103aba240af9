"""One router process's lifecycle: start order, the drain, stop order, reloads and signals. What
each part is and how it is built from config is composition.py's.

Start: build the parts (composition.py: HTTP client, adapters, event publisher, limits, cache,
       engine, fleet view subscriber, auth) -> the fleet view's first read of the snapshots (up
       to fleet.startup_wait_s) -> gRPC server -> OpenAI HTTP door (when configured) -> health
       SERVING.
Stop:  the shutdown gate closes (every gRPC call reaching a handler from then on is refused
       UNAVAILABLE + RetryInfo, with its error event) -> health NOT_SERVING -> the gRPC drain
       (the server keeps accepting, and refusing, until the calls started before the stop end,
       then server.stop) and the HTTP door's drain, together, both within the grace -> engine
       (cancels hedge losers still running) -> publisher flush (to Kafka, or to the disk spool)
       -> HTTP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import time
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
from grpc_health.v1 import health
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from router_service.api.server import create_server, mark_serving
from router_service.composition import Composition, Placement, compose
from router_service.engine import Engine
from router_service.fleet.subscriber import SnapshotSubscriber
from router_service.governance import Governance
from router_service.keystore.base import KeyStore
from router_service.openai_door.server import OpenAIDoor
from router_service.providers.registry import build_adapters
from router_service.settings import ConfigError, RuntimeConfig, load_config

log = logging.getLogger(__name__)
# Accepting on after SIGTERM, at least, before the server stops: a few event-loop turns hand every
# call the core already accepted to the shutdown gate (refused with RetryInfo, not CANCELLED);
# short enough that no orchestrator notices.
_DRAIN_S = 0.25


class RouterApp:
    """One router process. `start()` returns the bound port; `stop()` is idempotent."""

    def __init__(
        self,
        config: RuntimeConfig,
        *,
        listen: str | None = None,
        reuse_port: bool = False,
        worker_index: int | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        """`registry`: where this router's per-deployment gauges go; tests running two routers in
        one process give the second its own."""
        self.config = config
        self._placement = Placement(listen, reuse_port, worker_index, registry)
        self._stack = AsyncExitStack()
        self._parts: Composition | None = None
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._door: OpenAIDoor | None = None  # once started
        self._stopped = False
        self.openai_port = 0  # the OpenAI-compatible HTTP door's, when server.openai_http is set
        self.key_store: KeyStore | None = None  # None with auth off
        self.governance: Governance | None = None  # None when no limit is configured
        self.port = 0

    @property
    def engine(self) -> Engine:
        """The running engine (its live state and fleet view); only after `start()`."""
        return self._started().engine

    @property
    def registry(self) -> CollectorRegistry:
        """Where this router's per-deployment gauges and fleet metrics are."""
        return self._placement.registry

    async def start(self) -> int:
        placement = self._placement
        parts = await compose(self.config, self._stack, placement, lambda: self.config.endpoints)
        self._parts, self.key_store, self.governance = parts, parts.key_store, parts.governance
        self._server, self.port, self._health = create_server(
            parts.servicer,
            self.config.server,
            listen=placement.listen,
            reuse_port=placement.reuse_port,
            interceptors=parts.interceptors,
        )
        await self._wait_for_fleet_view(parts.fleet_view)
        await self._server.start()
        if parts.door is not None:
            self.openai_port = await parts.door.start(reuse_port=placement.reuse_port)
            self._door = parts.door
        await mark_serving(self._health)
        log.info("router listening on port %d (config %s)", self.port, self.config.source or "<inline>")
        return self.port

    async def _wait_for_fleet_view(self, subscriber: SnapshotSubscriber | None) -> None:
        """Start serving only once the fleet view has read the snapshot topics, bounded by
        fleet.startup_wait_s: a cold instance would otherwise route its first requests on an empty
        view, to a deployment every other router has demoted. The port is bound but not served
        meanwhile (health included): a caller or probe connecting now is answered once it ends."""
        fleet = self.config.fleet
        if subscriber is None or fleet is None or fleet.startup_wait_s <= 0:
            return
        if not await subscriber.wait_ready(fleet.startup_wait_s):
            log.warning(
                "fleet view: snapshot topics not read within fleet.startup_wait_s=%.1fs; serving on "
                "local state until they are (llmrouter_fleet_view_ready 0)",
                fleet.startup_wait_s,
            )

    def reload(self, config: RuntimeConfig) -> None:
        """Swap catalog, policies and provider endpoints in place (SIGHUP), and the cache's rules,
        TTL and bounds (its entries kept); re-read the key store (the keys; `auth` itself stays).
        In-flight requests finish on the config they started with. Server, metrics, events, fleet,
        requests and feedback settings, the cache's store, and turning on a cache that was off at
        start need a restart."""
        if self._parts is None:
            raise RuntimeError("reload before start")
        self._parts.engine.reconfigure(config, build_adapters(config.endpoints, self._parts.client))
        if self._parts.cache is not None:
            self._parts.cache.reconfigure(config.cache, self.config.cache)
        elif config.cache.enabled:  # no cache was built at start: say so rather than ignore it
            log.warning("reload: cache.enabled is ignored until a restart (the cache was off at start)")
        if self.key_store is not None:
            self.key_store.reload()
        self.config = config
        log.info("config reloaded from %s", config.source or "<inline>")

    async def stop(self, grace_s: float | None = None) -> None:
        if self._stopped:
            return
        self._stopped = True
        grace = self.config.server.grace_period_s if grace_s is None else grace_s
        parts = self._parts
        if parts is not None:
            parts.shutdown_gate.close()  # first, before any await: no call starts once the stop began
        if self._health is not None:
            await self._health.enter_graceful_shutdown()  # load balancers stop sending new calls
        drains = []  # both doors refuse new calls, then let in-flight ones finish, at the same time
        if self._server is not None:
            drains.append(self._drain_grpc(self._server, grace))
        if self._door is not None:
            drains.append(self._door.stop(grace))
        await asyncio.gather(*drains)
        await self._stack.aclose()
        log.info("router stopped")

    async def _drain_grpc(self, server: grpc.aio.Server, grace: float) -> None:
        """Keep the server accepting while the calls started before the stop finish (at most
        `grace`), then stop it. grpc.aio's stop() CANCELs (no details, no event) every call the
        core accepted but had not handed to a handler yet, and a call arriving after it gets the
        core's own UNAVAILABLE without RetryInfo (issue 19): until then, the shutdown gate
        answers both kinds itself. The first `_DRAIN_S` hands every call already queued in the
        core to the gate even when nothing is running."""
        deadline = time.monotonic() + grace
        await asyncio.sleep(min(_DRAIN_S, grace))
        gate = self._parts.shutdown_gate if self._parts is not None else None
        if gate is not None and not await gate.wait_idle(deadline - time.monotonic()):
            log.warning("grace period over with %d calls still running: cancelling them", gate.running)
        await server.stop(max(0.0, deadline - time.monotonic()))

    def _started(self) -> Composition:
        if self._parts is None:
            raise RuntimeError("the router has not started")
        return self._parts

    async def __aenter__(self) -> RouterApp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def start_metrics_server(listen: str, offset: int = 0) -> None:
    """Serve /metrics on HOST:PORT (+offset for worker N). Empty `listen` disables it."""
    if not listen:
        return
    host, _, port = listen.rpartition(":")
    start_http_server(int(port) + offset, addr=host)


async def serve(config: RuntimeConfig, *, worker_index: int = 0, reuse_port: bool = False) -> None:
    """Run one router until SIGTERM/SIGINT, then shut down gracefully. SIGHUP reloads the config."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    start_metrics_server(config.metrics.listen, worker_index)
    app = RouterApp(config, reuse_port=reuse_port, worker_index=worker_index if reuse_port else None)
    await app.start()
    if config.server.gc_freeze_after_start:
        _freeze_startup_objects()
    if config.source:
        loop.add_signal_handler(signal.SIGHUP, _reload, app, config.source)
    try:
        await stop.wait()
        log.info("shutdown requested; draining for up to %.1fs", config.server.grace_period_s)
    finally:
        await app.stop()


def _freeze_startup_objects() -> None:
    """Collect once, then freeze the survivors: they live as long as the process, and without
    this every full collection under load walks all of them again (measured in bench/README.md)."""
    gc.collect()
    gc.freeze()


def _reload(app: RouterApp, path: str) -> None:
    """SIGHUP: a bad file is logged and ignored; the running config stays."""
    try:
        app.reload(load_config(path))
    except (ConfigError, ValueError) as exc:
        log.error("config reload failed, keeping the running config: %s", exc)


def run_workers(config_path: Path, workers: int) -> int:
    """Run `workers` router processes sharing the port (SO_REUSEPORT). Returns an exit code.

    Children are spawned, not forked, so no gRPC state crosses a fork. The parent only forwards
    SIGTERM/SIGINT and waits; each child drains its own in-flight calls.
    """
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_main, args=(str(config_path), i), daemon=False) for i in range(workers)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)
    for p in procs:
        p.join()
    return max((p.exitcode or 0) for p in procs)


def _worker_main(config_path: str, index: int) -> None:
    configure_logging()
    config = load_config(config_path)
    with contextlib.suppress(KeyboardInterrupt):
        _run(serve(config, worker_index=index, reuse_port=True))


def _run(main: object) -> None:
    try:
        import uvloop

        uvloop.run(main)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency on Linux
        asyncio.run(main)  # type: ignore[arg-type]


def configure_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )
    # httpx logs every request at INFO; on the request path that cost 6-9% of router CPU
    # (bench/overhead.py), and upstream attempts are already in metrics and events.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def main_serve(config_path: Path, workers: int | None) -> int:
    configure_logging()
    config = load_config(config_path)
    count = workers or config.server.workers
    if count > 1:
        return run_workers(config_path, count)
    _run(serve(config))
    return 0
