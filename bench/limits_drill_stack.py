"""The limits drill's processes: the broker and Redis, two simulated providers, three routers
sharing the Redis limits store (auth required, a key file of two keys) and publishing their events,
and a real costs consumer rolling the events up; stopped in the order that keeps the rollups."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.limits_drill_params import PRICE, Params
from bench.servers import Fleet, Server, free_port, router_service_argv
from router_service.embedded.broker import EmbeddedBroker
from router_service.embedded.redis_server import EmbeddedRedis
from router_service.identity import key_secret
from router_service.identity.model import Identity
from router_service.identity.records import Credential, KeyRecord
from router_service.keystore.file_store import write_key_file

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stack:
    """The drill's processes: the broker, Redis, the sims and routers (the fleet), the consumer."""

    workdir: Path
    broker: EmbeddedBroker
    redis: EmbeddedRedis
    fleet: Fleet
    topic: str = field(default_factory=lambda: f"drill.events.{uuid.uuid4().hex[:8]}")
    snapshot_topic: str = field(default_factory=lambda: f"drill.costs.{uuid.uuid4().hex[:8]}")
    consumer: subprocess.Popen[bytes] | None = None


def key_file(path: Path) -> dict[str, str]:
    """Two keys, one per limited team; returns {team: secret}."""
    records, secrets = [], {}
    for team in ("budget", "tpm"):
        key_id = f"k_drill_{team}"
        secret = key_secret.new_secret(key_id)
        secrets[team] = secret
        credential = Credential(key_secret.hash_secret(secret))
        records.append(KeyRecord(Identity(key_id=key_id, team=team, customer="drill"), (credential,)))
    write_key_file(path, records)
    return secrets


def router_config(
    port: int,
    sims: list[Server],
    keys: Path,
    bootstrap: str,
    topic: str,
    redis_url: str,
    spool: Path,
    p: Params,
) -> dict[str, Any]:
    return {
        "server": {"listen": f"127.0.0.1:{port}", "workers": 1, "grace_period_s": 2},
        "metrics": {"listen": ""},
        "auth": {"mode": "required", "keys_file": str(keys)},
        "routing": {"attempt_timeout_s": 5, "first_token_timeout_s": 5},
        # The fast sims fail 0.5% of calls: at this rate the default breaker (3 failures a
        # minute) would keep both open, and the drill would measure NO_ELIGIBLE_CANDIDATE.
        "resilience": {"breaker": {"min_failure_rate": 0.05}},
        "providers": {
            f"sim{i}": {"kind": "openai", "base_url": f"http://127.0.0.1:{s.port}/v1", "api_key": "k"}
            for i, s in enumerate(sims)
        },
        "models": [
            {"name": "drill", "provider": f"sim{i}", "price_per_mtok": PRICE, "capabilities": ["streaming"]}
            for i in range(len(sims))
        ],
        "policies": {"default": {"models": ["drill"], "hedge": {"enabled": True, "delay_s": 0.06}}},
        "events": {
            "bootstrap_servers": bootstrap,
            "topic": topic,
            "enable_idempotence": False,
            "spool_dir": str(spool),
        },
        "limits": {
            "store": "redis",
            "redis_url": redis_url,
            "store_timeout_s": 2.0,
            "reservation_ttl_s": p.reservation_ttl_s,
            "budgets": [{"level": "team", "entity": "budget", "usd": p.budget_usd, "period": "month"}],
            "rate_limits": [{"level": "team", "entity": "tpm", "tokens_per_minute": p.tpm_limit}],
        },
    }


def spawn_sims(fleet: Fleet) -> list[Server]:
    """Two `fast` simulated providers, seeded apart."""
    sims = []
    for i in range(2):
        port = free_port()
        argv = [*router_service_argv(), "sim", "--port", str(port), "--preset", "fast", "--seed", str(i + 1)]
        sims.append(fleet.spawn(f"sim{i}", port, argv))
    return sims


def router_configs(stack: Stack, sims: list[Server], p: Params) -> list[Callable[[int], dict[str, Any]]]:
    """The three routers' configs (each for the port it is given), each on its own spool."""
    return [
        functools.partial(
            router_config,
            sims=sims,
            keys=stack.workdir / "keys.yaml",
            bootstrap=stack.broker.bootstrap,
            topic=stack.topic,
            redis_url=stack.redis.url,
            spool=stack.workdir / f"spool-{i}",
            p=p,
        )
        for i in range(3)
    ]


def start_costs_consumer(stack: Stack) -> subprocess.Popen[bytes]:
    """A real `router-service consume costs` process rolling the drill's events up every second."""
    with (stack.workdir / "consumer.log").open("wb") as log:
        return subprocess.Popen(
            [*router_service_argv(), "consume", "costs", "--bootstrap", stack.broker.bootstrap,
             "--input-topic", stack.topic, "--snapshot-topic", stack.snapshot_topic,
             "--group-id", f"g-{stack.snapshot_topic}", "--snapshot-interval", "1",
             "--metrics-port", str(free_port()), "--create-topics"],
            cwd=ROOT, env={**os.environ, "KAFKA_ENABLE_IDEMPOTENCE": "false"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


async def stop_stack(stack: Stack) -> None:
    """The consumer first (SIGTERM: its final commit), then the fleet, Redis and the broker."""
    consumer = stack.consumer
    if consumer is not None and consumer.poll() is None:
        consumer.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            consumer.wait(20)
        if consumer.poll() is None:
            consumer.kill()
    stack.fleet.stop_all()
    await stack.redis.stop()
    await stack.broker.kill()
