"""How a router is built from its config: every part, in the order they depend on each other.

`compose` makes them (HTTP client -> adapters -> event publisher -> observers and interceptors ->
limits -> cache -> engine -> live-state gauges -> fleet view subscriber -> auth gate -> servicer ->
OpenAI HTTP door), starting what must run before the server does (the publisher, the fleet view
subscriber, the key store) and pushing each one's stop onto the app's exit stack. The stack
closes them in reverse (LIFO): the engine before the HTTP client, the limits, cache and tracer
after the engine (so calls drained at stop can still settle, store and export). What happens
after building (serving, draining, stopping, reloads, signals) is app.py's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass

import grpc
import httpx
from prometheus_client import REGISTRY, CollectorRegistry

from router_service.api.interceptors import MetricsInterceptor, ShutdownGate
from router_service.api.server import SERVICE_NAME
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
from router_service.limits.reconcile import fleet_rolling, fleet_rollup
from router_service.openai_door.server import OpenAIDoor
from router_service.providers.base import ProviderEndpoint
from router_service.providers.http import make_http_client
from router_service.providers.registry import build_adapters
from router_service.quality_learning.feed import LearningFeed
from router_service.request_ledger import RequestLedger
from router_service.resilience.live_state import LiveState
from router_service.resilience.retry import RetryBudgets
from router_service.routing.learning import QualityLearner
from router_service.settings import RuntimeConfig
from router_service.telemetry.events import EventSink, FeedbackEvent, NullSink, RequestContext, TelemetryEvent
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.live_metrics import LiveStateCollector
from router_service.telemetry.observer import EventObserver, FanOut, MetricsObserver
from router_service.telemetry.publisher import KafkaPublisher

log = logging.getLogger(__name__)

Endpoints = Callable[[], Mapping[str, ProviderEndpoint]]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where this router process runs: not config, given by whoever starts it."""

    listen: str | None = None  # overrides server.listen
    reuse_port: bool = False
    worker_index: int | None = None  # worker N of --workers (each owns its own spool)
    # Where this router's per-deployment gauges and fleet metrics go; tests running two routers
    # in one process give the second its own.
    registry: CollectorRegistry = REGISTRY


@dataclass(frozen=True, slots=True)
class Composition:
    """A built router, not serving yet: the gRPC server is made from `servicer` and
    `interceptors`, the door (if configured) is started by the app."""

    engine: Engine
    client: httpx.AsyncClient  # the adapters' (a reload builds new adapters over it)
    servicer: RouterServicer
    interceptors: list[grpc.aio.ServerInterceptor]
    shutdown_gate: ShutdownGate
    fleet_view: SnapshotSubscriber | None  # None without events or a fleet section
    door: OpenAIDoor | None  # None unless server.openai_http is set
    key_store: KeyStore | None  # None with auth off
    governance: Governance | None  # None when no limit is configured
    cache: ResponseCache | None  # None when the cache is off at start


async def compose(
    config: RuntimeConfig, stack: AsyncExitStack, placement: Placement, endpoints: Endpoints
) -> Composition:
    """Build every part of a router from `config`; each one's stop goes on `stack`. `endpoints`:
    the running config's provider endpoints (a reload replaces them; traced attempts name them)."""
    client = make_http_client(config.http)
    stack.push_async_callback(client.aclose)
    adapters = build_adapters(config.endpoints, client)
    sink = await _start_events(config, stack, placement.worker_index)
    learning = _learning_feed(config)
    observer, interceptors, shutdown_gate = _watchers(config, stack, sink, learning, endpoints)
    governance = _start_limits(config, stack, sink)
    cache = _start_cache(config, stack)
    engine = Engine(config, adapters, _engine_parts(config, observer, governance, cache, learning))
    stack.push_async_callback(engine.aclose)  # before the HTTP client closes
    _register_live_metrics(placement.registry, stack, engine)
    fleet_view = _start_fleet_view(config, stack, placement.registry, engine)
    if governance is not None and engine.fleet is not None:
        # The costs rollups the fleet view follows are the settled truth the store is held to.
        current = functools.partial(_current_fleet_view, engine)
        governance.reconcile_with(fleet_rollup(current), fleet_rolling(current))
    auth, key_store = await _start_auth(config, stack, placement.listen)
    ledger = RequestLedger(config.ledger)  # both doors': gRPC Feedback may name HTTP requests
    servicer = RouterServicer(
        engine,
        config.routing.default_deadline_s,
        feedback=_feedback_sink(sink, learning),
        ledger=ledger,
        require_known_feedback=config.require_known_feedback,
        gate=auth,
        governance=governance,
    )
    door = _openai_door(config, engine, auth, ledger)
    return Composition(
        engine, client, servicer, interceptors, shutdown_gate, fleet_view, door, key_store, governance, cache
    )


async def _start_events(config: RuntimeConfig, stack: AsyncExitStack, worker_index: int | None) -> EventSink:
    events = config.events
    if events is None:
        return NullSink()
    if worker_index is not None:  # each worker owns (and locks) its own spool
        events = dataclasses.replace(events, spool_dir=f"{events.spool_dir}/worker-{worker_index}")
    if config.create_topic_partitions:
        await ensure_topics(events.bootstrap_servers, {events.topic: config.create_topic_partitions})
    publisher = KafkaPublisher(events)
    await publisher.start()
    stack.push_async_callback(publisher.stop)
    return publisher


def _watchers(
    config: RuntimeConfig,
    stack: AsyncExitStack,
    sink: EventSink,
    learning: LearningFeed | None,
    endpoints: Endpoints,
) -> tuple[RequestObserver, list[grpc.aio.ServerInterceptor], ShutdownGate]:
    """Who watches each request (metrics, events, attempt spans, the learner's memory of who
    answered what) and each call (the interceptors), and the shutdown gate among the latter."""
    observers: list[RequestObserver] = [MetricsObserver()]
    if config.events is not None:
        observers.append(EventObserver(sink, include_content=config.events.include_content))
    shutdown_gate = ShutdownGate(SERVICE_NAME, sink)
    interceptors: list[grpc.aio.ServerInterceptor] = [MetricsInterceptor(), shutdown_gate]
    if config.tracing.enabled:
        interceptor, tracing_observer = _start_tracing(config, stack, endpoints)
        interceptors.insert(0, interceptor)  # first: the call's span is current in all the rest
        observers.append(tracing_observer)
    if learning is not None:
        observers.append(learning)  # remembers who answered what, for the feedback to come
    observer = observers[0] if len(observers) == 1 else FanOut(*observers)
    return observer, interceptors, shutdown_gate


def _start_tracing(
    config: RuntimeConfig, stack: AsyncExitStack, endpoints: Endpoints
) -> tuple[grpc.aio.ServerInterceptor, RequestObserver]:
    """The SERVER-span interceptor and the attempt-span observer. Imported here: a router
    with tracing off does not load the SDK and exporter at all."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    from router_service.telemetry.genai_semconv import SCHEMA_URL
    from router_service.telemetry.tracing import TracingObserver, build_tracer_provider

    provider = build_tracer_provider(config.tracing)
    # Closed after the engine (pushed before it): spans of calls drained at stop, and of hedge
    # losers the engine's close cancels, are exported too. Off the loop: the final export is
    # a blocking HTTP request.
    stack.push_async_callback(asyncio.to_thread, provider.shutdown)
    tracer = provider.get_tracer(__name__, schema_url=SCHEMA_URL)
    # Health checks (probes every few seconds) and reflection would bury the calls in traces.
    untraced = filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection"))
    interceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=filters.negate(untraced)
    )
    return interceptor, TracingObserver(tracer, endpoints)


def _start_limits(config: RuntimeConfig, stack: AsyncExitStack, sink: EventSink) -> Governance | None:
    """Budgets and rate limits, when any are configured: closed after the engine (LIFO), so
    the settles of calls drained at stop reach the store before it closes."""
    governor = build_governor(config.limits)
    if governor is None:
        return None
    stack.push_async_callback(governor.close)
    governance = Governance(governor, sink)
    governance.start_reporting()
    stack.push_async_callback(governance.aclose)
    return governance


def _start_cache(config: RuntimeConfig, stack: AsyncExitStack) -> ResponseCache | None:
    """The response cache, when enabled (its store: this process's memory, or the shared
    Redis); closed after the engine (LIFO), so calls drained at stop can still store."""
    cache = build_cache(config.cache, SYSTEM_CLOCK)
    if cache is not None:
        stack.push_async_callback(cache.close)
    return cache


def _engine_parts(
    config: RuntimeConfig,
    observer: RequestObserver,
    governance: Governance | None,
    cache: ResponseCache | None,
    learning: LearningFeed | None,
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


def _register_live_metrics(registry: CollectorRegistry, stack: AsyncExitStack, engine: Engine) -> None:
    collector = LiveStateCollector(
        lambda: engine.live, lambda: [d.key for d in engine.config.catalog.deployments]
    )
    registry.register(collector)
    stack.callback(registry.unregister, collector)


def _start_fleet_view(
    config: RuntimeConfig, stack: AsyncExitStack, registry: CollectorRegistry, engine: Engine
) -> SnapshotSubscriber | None:
    """Follow the consumers' snapshot topics in the background (the app holds the server back
    until the first read is done)."""
    events, fleet = config.events, engine.fleet
    if events is None or fleet is None:
        return None
    # A router given its own registry (tests running two in one process) gets its own fleet
    # metrics too; otherwise the process-wide ones, on the default registry.
    metrics = default_fleet_metrics() if registry is REGISTRY else FleetMetrics(registry)
    subscriber = SnapshotSubscriber(
        events.bootstrap_servers, fleet.config, fleet.update, security=events.security, metrics=metrics
    )
    subscriber.start()
    stack.push_async_callback(subscriber.stop)
    return subscriber


def _current_fleet_view(engine: Engine) -> FleetView | None:
    return None if engine.fleet is None else engine.fleet.view


async def _start_auth(
    config: RuntimeConfig, stack: AsyncExitStack, listen: str | None
) -> tuple[AuthGate, KeyStore | None]:
    """The auth gate over the configured key store (started here, stopped with the app)."""
    auth = config.auth
    mode = AuthMode(auth.mode)
    if mode is AuthMode.OFF:
        if not _loopback(listen or config.server.listen):
            log.warning("auth.mode is off on a non-loopback address: every caller may call everything")
        return AuthGate(mode, None), None
    store = build_key_store(auth)
    await store.start()
    stack.push_async_callback(store.stop)
    gate = AuthGate(
        mode,
        Authenticator(store.get, time.time),
        anonymous=auth.anonymous.to_identity("anonymous"),
        certificate_identities={
            subject: ident.to_identity(f"cert:{subject}")
            for subject, ident in auth.certificate_identities.items()
        },
    )
    return gate, store


def _loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _openai_door(
    config: RuntimeConfig, engine: Engine, gate: AuthGate, ledger: RequestLedger
) -> OpenAIDoor | None:
    http = config.server.openai_http
    if http is None:
        return None
    return OpenAIDoor(
        engine, http, default_deadline_s=config.routing.default_deadline_s, gate=gate, ledger=ledger
    )


def _feedback_sink(sink: EventSink, learning: LearningFeed | None) -> FeedbackSink:
    """Feedback is published (for the quality consumer), then filed in this router's learner."""
    publish = feedback_publisher(sink)
    return publish if learning is None else learning.feedback_sink(publish)


def feedback_publisher(sink: EventSink) -> FeedbackSink:
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
