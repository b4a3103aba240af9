"""Composition root: builds every object from config, owns start/stop order and signals.

Start: HTTP client -> adapters -> event publisher -> limits -> engine -> fleet view subscriber -> its
       first read of the snapshots (up to fleet.startup_wait_s) -> gRPC server -> OpenAI HTTP door
       (when configured) -> health SERVING.
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
import dataclasses
import functools
import gc
import logging
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from router_service.api.interceptors import MetricsInterceptor, ShutdownGate
from router_service.api.server import SERVICE_NAME, create_server, mark_serving
from router_service.api.servicer import FeedbackSink, RouterServicer
from router_service.cache.cache import ResponseCache
from router_service.cache.factory import build_cache
from router_service.clock import SYSTEM_CLOCK
from router_service.engine import Engine, EngineParts, RequestObserver
from router_service.fleet.metrics import FleetMetrics
from router_service.fleet.metrics import default_metrics as default_fleet_metrics
from router_service.fleet.signals import FleetSignals
from router_service.fleet.subscriber import SnapshotSubscriber
from router_service.fleet.view import FleetView
from router_service.governance import Governance
from router_service.identity.authenticator import Authenticator
from router_service.identity.gate import AuthGate, AuthMode
from router_service.identity.model import Identity, Scope
from router_service.keystore.base import KeyStore
from router_service.keystore.factory import build_key_store
from router_service.limits.factory import build_governor
from router_service.limits.reconcile import fleet_rollup
from router_service.openai_door.server import OpenAIDoor
from router_service.providers.base import ProviderEndpoint
from router_service.providers.http import make_http_client
from router_service.providers.registry import build_adapters
from router_service.quality_learning.feed import LearningFeed
from router_service.request_ledger import RequestLedger
from router_service.resilience.live_state import LiveState
from router_service.resilience.retry import RetryBudgets
from router_service.routing.learning import QualityLearner
from router_service.settings import ConfigError, RuntimeConfig, load_config
from router_service.telemetry.events import EventSink, FeedbackEvent, NullSink, RequestContext, TelemetryEvent
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.live_metrics import LiveStateCollector
from router_service.telemetry.observer import EventObserver, FanOut, MetricsObserver
from router_service.telemetry.publisher import KafkaPublisher

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
        self._registry = registry
        self._worker_index = worker_index
        self._listen = listen
        self._reuse_port = reuse_port
        self._stack = AsyncExitStack()
        self._server: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._gate: ShutdownGate | None = None
        self._door: OpenAIDoor | None = None
        self.openai_port = 0  # the OpenAI-compatible HTTP door's, when server.openai_http is set
        self._stopped = False
        self._engine: Engine | None = None
        self._client: httpx.AsyncClient | None = None
        self.key_store: KeyStore | None = None  # None with auth off
        self.governance: Governance | None = None  # None when no limit is configured
        self.port = 0

    async def start(self) -> int:
        client = make_http_client(self.config.http)
        self._stack.push_async_callback(client.aclose)
        adapters = build_adapters(self.config.endpoints, client)
        sink = await self._start_events()
        observers: list[RequestObserver] = [MetricsObserver()]
        if self.config.events is not None:
            observers.append(EventObserver(sink, include_content=self.config.events.include_content))
        self._gate = ShutdownGate(SERVICE_NAME, sink)
        interceptors: list[grpc.aio.ServerInterceptor] = [MetricsInterceptor(), self._gate]
        if self.config.tracing.enabled:
            interceptor, tracing_observer = self._start_tracing(lambda: self.config.endpoints)
            interceptors.insert(0, interceptor)  # first: the call's span is current in all the rest
            observers.append(tracing_observer)
        learning = _learning_feed(self.config)
        if learning is not None:
            observers.append(learning)  # remembers who answered what, for the feedback to come
        observer = observers[0] if len(observers) == 1 else FanOut(*observers)
        governance = self._start_limits(sink)
        cache = self._start_cache()
        parts = _engine_parts(self.config, observer, governance, cache, learning)
        engine = Engine(self.config, adapters, parts)
        self._stack.push_async_callback(engine.aclose)  # before the HTTP client closes
        self._engine, self._client = engine, client
        self._register_live_metrics(engine)
        fleet_view = self._start_fleet_view(engine)
        if governance is not None and engine.fleet is not None:
            # The costs rollups the fleet view follows are the settled truth the store is held to.
            governance.reconcile_with(fleet_rollup(functools.partial(_current_fleet_view, engine)))
        gate = await self._start_auth()
        ledger = RequestLedger(self.config.ledger)  # both doors': gRPC Feedback may name HTTP requests
        servicer = RouterServicer(
            engine,
            self.config.routing.default_deadline_s,
            feedback=_feedback_sink(sink, learning),
            ledger=ledger,
            require_known_feedback=self.config.require_known_feedback,
            gate=gate,
            governance=governance,
        )
        self._server, self.port, self._health = create_server(
            servicer,
            self.config.server,
            listen=self._listen,
            reuse_port=self._reuse_port,
            interceptors=interceptors,
        )
        await self._wait_for_fleet_view(fleet_view)
        await self._server.start()
        await self._start_openai_door(engine, gate, ledger)
        await mark_serving(self._health)
        log.info("router listening on port %d (config %s)", self.port, self.config.source or "<inline>")
        return self.port

    def _start_limits(self, sink: EventSink) -> Governance | None:
        """Budgets and rate limits, when any are configured: closed after the engine (LIFO), so
        the settles of calls drained at stop reach the store before it closes."""
        governor = build_governor(self.config.limits)
        if governor is None:
            return None
        self._stack.push_async_callback(governor.close)
        governance = Governance(governor, sink)
        governance.start_reporting()
        self._stack.push_async_callback(governance.aclose)
        self.governance = governance
        return governance

    def _start_cache(self) -> ResponseCache | None:
        """The response cache, when enabled (its store: this process's memory, or the shared
        Redis); closed after the engine (LIFO), so calls drained at stop can still store."""
        cache = build_cache(self.config.cache, SYSTEM_CLOCK)
        if cache is not None:
            self._stack.push_async_callback(cache.close)
        return cache

    async def _start_openai_door(self, engine: Engine, gate: AuthGate, ledger: RequestLedger) -> None:
        http = self.config.server.openai_http
        if http is None:
            return
        door = OpenAIDoor(
            engine, http, default_deadline_s=self.config.routing.default_deadline_s, gate=gate, ledger=ledger
        )
        self.openai_port = await door.start(reuse_port=self._reuse_port)
        self._door = door

    async def _start_auth(self) -> AuthGate:
        """The auth gate over the configured key store (started here, stopped with the app)."""
        auth = self.config.auth
        mode = AuthMode(auth.mode)
        if mode is AuthMode.OFF:
            if not _loopback(self._listen or self.config.server.listen):
                log.warning("auth.mode is off on a non-loopback address: every caller may call everything")
            return AuthGate(mode, None)
        store = build_key_store(auth)
        self.key_store = store
        await store.start()
        self._stack.push_async_callback(store.stop)
        return AuthGate(
            mode,
            Authenticator(store.get, time.time),
            anonymous=auth.anonymous.to_identity("anonymous"),
            certificate_identities={
                subject: ident.to_identity(f"cert:{subject}")
                for subject, ident in auth.certificate_identities.items()
            },
        )

    def _start_tracing(
        self, endpoints: Callable[[], Mapping[str, ProviderEndpoint]]
    ) -> tuple[grpc.aio.ServerInterceptor, RequestObserver]:
        """The SERVER-span interceptor and the attempt-span observer. Imported here: a router
        with tracing off does not load the SDK and exporter at all."""
        from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

        from router_service.telemetry.genai_semconv import SCHEMA_URL
        from router_service.telemetry.tracing import TracingObserver, build_tracer_provider

        provider = build_tracer_provider(self.config.tracing)
        # Closed after the engine (pushed before it): spans of calls drained at stop, and of hedge
        # losers the engine's close cancels, are exported too. Off the loop: the final export is
        # a blocking HTTP request.
        self._stack.push_async_callback(asyncio.to_thread, provider.shutdown)
        tracer = provider.get_tracer(__name__, schema_url=SCHEMA_URL)
        # Health checks (probes every few seconds) and reflection would bury the calls in traces.
        untraced = filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection"))
        interceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=provider, filter_=filters.negate(untraced)
        )
        return interceptor, TracingObserver(tracer, endpoints)

    def _register_live_metrics(self, engine: Engine) -> None:
        collector = LiveStateCollector(
            lambda: engine.live, lambda: [d.key for d in engine.config.catalog.deployments]
        )
        self._registry.register(collector)
        self._stack.callback(self._registry.unregister, collector)

    def _start_fleet_view(self, engine: Engine) -> SnapshotSubscriber | None:
        """Follow the consumers' snapshot topics in the background (`_wait_for_fleet_view` holds
        the server back until the first read is done)."""
        events, fleet = self.config.events, engine.fleet
        if events is None or fleet is None:
            return None
        # A router given its own registry (tests running two in one process) gets its own fleet
        # metrics too; otherwise the process-wide ones, on the default registry.
        metrics = default_fleet_metrics() if self._registry is REGISTRY else FleetMetrics(self._registry)
        subscriber = SnapshotSubscriber(
            events.bootstrap_servers, fleet.config, fleet.update, security=events.security, metrics=metrics
        )
        subscriber.start()
        self._stack.push_async_callback(subscriber.stop)
        return subscriber

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
        """Swap catalog, policies and provider endpoints in place (SIGHUP). In-flight requests
        finish on the config they started with. Server, metrics, events, fleet, requests and
        feedback settings need a restart."""
        if self._engine is None or self._client is None:
            raise RuntimeError("reload before start")
        self._engine.reconfigure(config, build_adapters(config.endpoints, self._client))
        self.config = config
        log.info("config reloaded from %s", config.source or "<inline>")

    async def _start_events(self) -> EventSink:
        events = self.config.events
        if events is None:
            return NullSink()
        if self._worker_index is not None:  # each worker owns (and locks) its own spool
            events = dataclasses.replace(events, spool_dir=f"{events.spool_dir}/worker-{self._worker_index}")
        if self.config.create_topic_partitions:
            await ensure_topics(events.bootstrap_servers, {events.topic: self.config.create_topic_partitions})
        publisher = KafkaPublisher(events)
        await publisher.start()
        self._stack.push_async_callback(publisher.stop)
        return publisher

    async def stop(self, grace_s: float | None = None) -> None:
        if self._stopped:
            return
        self._stopped = True
        grace = self.config.server.grace_period_s if grace_s is None else grace_s
        if self._gate is not None:
            self._gate.close()  # first, before any await: no call starts once the stop began
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
        if self._gate is not None and not await self._gate.wait_idle(deadline - time.monotonic()):
            log.warning("grace period over with %d calls still running: cancelling them", self._gate.running)
        await server.stop(max(0.0, deadline - time.monotonic()))

    async def __aenter__(self) -> RouterApp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _current_fleet_view(engine: Engine) -> FleetView | None:
    return None if engine.fleet is None else engine.fleet.view


def _engine_parts(
    config: RuntimeConfig,
    observer: RequestObserver,
    governance: Governance | None = None,
    cache: ResponseCache | None = None,
    learning: LearningFeed | None = None,
) -> EngineParts:
    """The engine's collaborators, made once: a config reload keeps them (health knowledge and
    spent retries are not config), so live-state settings keep their startup values."""
    live = LiveState(config.live_state)
    return EngineParts(
        live=live,
        budgets=RetryBudgets(),
        clock=SYSTEM_CLOCK,
        rng=random.Random(),
        observer=observer,
        # Routing reads live state merged with the fleet view (fed by `_start_fleet_view`).
        fleet=FleetSignals(live, config.fleet) if config.fleet is not None else None,
        governance=governance,
        cache=cache,
        learner=learning.learner if learning is not None else None,
    )


def _learning_feed(config: RuntimeConfig) -> LearningFeed | None:
    """The quality learner and what feeds it, when a policy uses `learned`. On the engine's clock
    (`SYSTEM_CLOCK.monotonic`): routing reads the learner at the times it files scores on."""
    if config.learning is None:
        return None
    ledger = config.ledger
    return LearningFeed(
        QualityLearner(config.learning),
        SYSTEM_CLOCK.monotonic,
        window_s=ledger.feedback_window_s,
        max_entries=ledger.feedback_max_entries,
    )


def _feedback_sink(sink: EventSink, learning: LearningFeed | None) -> FeedbackSink:
    """Feedback is published (for the quality consumer), then filed in this router's learner."""
    publish = _feedback_publisher(sink)
    return publish if learning is None else learning.feedback_sink(publish)


def _feedback_publisher(sink: EventSink) -> FeedbackSink:
    """Feedback events name the scorer: the envelope's key, team and customer are the identity
    that gave the score (the quality consumer checks it against the request's owner)."""

    def publish(request_id: str, score: float, tags: dict[str, str], scorer: Identity) -> None:
        context = RequestContext(
            request_id=request_id,
            api_key_id=scorer.key_id,
            team=scorer.team,
            customer=scorer.customer,
            user=scorer.user,
            tags=tags,
        )
        # Auth off (no key id): nobody is an evaluator, as before keys existed.
        evaluator = bool(scorer.key_id) and scorer.may(Scope.EVALUATE)
        body = FeedbackEvent(score, tags, evaluator=evaluator)
        sink.publish(TelemetryEvent.create(context, body, now_unix_s=time.time()))

    return publish


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
