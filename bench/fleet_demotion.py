"""Fleet demotion time, split by stage: router A's breaker opens -> router B demotes the deployment.

    .venv/bin/python bench/fleet_demotion.py               # 2 trials per scenario, ~2 min
    .venv/bin/python bench/fleet_demotion.py --trials 4

Real parts, as tests/integration/test_fleet_demotion.py: two RouterApps over loopback gRPC, three
simulated providers over HTTP, the embedded broker, the health/quality/costs ConsumerRunners.
Per trial: 60 successes on sim-a/m1 through A, then sim-a answers 500 until A's breaker opens
(t0). Probes stamp, on this process's monotonic clock:

    event     the last events record of A is readable (A sends nothing after t0: it is the tail
              of the burst whose last attempt opened the breaker; A's batching linger, the produce)
    snapshot  a health snapshot record that makes sim-a/m1 `failing` is readable (the consumer's
              poll, its flush timer: snapshot_interval_s, the produce)
    demoted   B's FleetSignals demote it (B's subscriber fetch, its view rebuild)

Scenarios: `cold` starts the consumers with the routers, as the integration test does, so their
group join and first assignment can overlap the fault; `warm` waits until the consumers own their
partitions and B's health topic is fresh first. Both with the test's 0.5 s snapshot interval, and
`warm` with the consumers' default 5 s. Writes bench/results/fleet_demotion.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as a script, this file's directory would shadow the `consumers` package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import grpc
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from consumers.jobs import job_named
from consumers.kafka import KafkaOptions
from consumers.metrics import ConsumerMetrics
from consumers.runner import ConsumerRunner, RunnerConfig
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.embedded.broker import EmbeddedBroker
from router_service.fleet.config import FleetConfig
from router_service.fleet.signals import FleetSignals
from router_service.fleet.subscriber import SnapshotState
from router_service.fleet.view import Topic
from router_service.resilience.breaker import BreakerState
from router_service.settings import parse_config
from router_service.sim.presets import preset_config
from router_service.sim.server import SimServer

RESULTS = Path(__file__).resolve().parent / "results" / "fleet_demotion.json"
FAILING = "sim-a/m1"
SIMS = {"sim-a": "m1", "sim-b": "m2", "sim-c": "m3"}
REFRESH_S = 0.2  # B's fleet.refresh_interval_s, as in the test


def _config(sims: dict[str, SimServer], topics: dict[str, str], spool: Path, broker: EmbeddedBroker) -> Any:
    return parse_config(
        {
            "server": {"listen": "127.0.0.1:0", "grace_period_s": 5},
            "metrics": {"listen": ""},
            "routing": {"attempt_timeout_s": 1.0, "first_token_timeout_s": 1.0},
            "resilience": {"max_retries": 0, "backoff_base_s": 0.01},
            "providers": {
                name: {"kind": "openai", "base_url": server.url, "api_key": f"k-{name}"}
                for name, server in sims.items()
            },
            "models": [
                {"name": model, "provider": name, "price_per_mtok": {"input": "0.15", "output": "0.60"}}
                for name, model in SIMS.items()
            ],
            "policies": {"default": {"models": ["m1", "m2", "m3"]}},
            "events": {
                "bootstrap_servers": broker.bootstrap,
                "topic": topics["events"],
                "enable_idempotence": False,
                "create_topic_partitions": 3,
                "spool_dir": str(spool),
            },
            "fleet": {
                "health_topic": topics["health"],
                "quality_topic": topics["quality"],
                "costs_topic": topics["costs"],
                "stale_after_s": 30,
                "refresh_interval_s": REFRESH_S,
                "min_attempts": 5,
            },
        }
    )


class Probe:
    """A group-less reader of one topic from the beginning, stamping what it reads."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=20
        )
        self.seen: list[tuple[float, Any]] = []  # (monotonic arrival, message)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        while not (partitions := self.consumer.partitions_for_topic(self.topic)):
            await self.consumer._client.force_metadata_update()
            await asyncio.sleep(0.05)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=50)
            now = time.monotonic()
            self.seen += [(now, m) for messages in batches.values() for m in messages]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


def _first_failing_snapshot(probe: Probe, after: float) -> float | None:
    state = SnapshotState()
    config = FleetConfig(min_attempts=5)
    for arrived, m in probe.seen:
        state.add(Topic.HEALTH, m.key, m.value, m.timestamp, m.headers)
        if arrived >= after:
            health = state.view(time.time(), config).health.get(FAILING)
            if health is not None and health.failing:
                return arrived
    return None


@dataclass
class Trial:
    """One trial's parts: router A (whose breaker opens), router B (which demotes), the consumers."""

    a: RouterApp
    b: RouterApp
    runners: list[ConsumerRunner]
    topics: dict[str, str]


async def trial(
    broker: EmbeddedBroker, sims: dict[str, SimServer], tmp: Path, *, warm: bool, interval_s: float
) -> dict[str, float]:
    t = await start_trial(broker, sims, tmp, interval_s)
    started = time.monotonic()
    tasks = [asyncio.create_task(r.run()) for r in t.runners]
    events, health = Probe(broker.bootstrap, t.topics["events"]), None
    await events.start()
    assert t.b.engine.fleet is not None
    fleet = t.b.engine.fleet
    try:
        # cold: when the consumers got their partitions is not waited for (nan)
        owned_at = await wait_warm(t.runners, fleet) - started if warm else float("nan")
        t0 = await open_breaker(t.a, sims)
        health = Probe(broker.bootstrap, t.topics["health"])
        await health.start()
        demoted = await wait_demoted(fleet, t0)
        await asyncio.sleep(0.3)
        # A sends nothing after t0: the newest events record is the tail of the burst whose last
        # attempt opened the breaker (record timestamps are the batch's, set after the linger).
        event = max(arrived for arrived, _ in events.seen)
        snapshot = _first_failing_snapshot(health, t0)
        return stage_times(t0, event, snapshot, demoted) | {
            "consumers_owned_after_s": owned_at,
            "fault_after_consumer_start_s": t0 - started,
        }
    finally:
        await events.stop()
        if health is not None:
            await health.stop()
        await stop_trial(t, tasks, sims)


async def start_trial(
    broker: EmbeddedBroker, sims: dict[str, SimServer], tmp: Path, interval_s: float
) -> Trial:
    """Routers A and B started on fresh topics, and the three consumers built (not yet run)."""
    suffix = uuid.uuid4().hex[:8]
    topics = {kind: f"bench.demote.{kind}.{suffix}" for kind in ("events", "health", "quality", "costs")}
    a = RouterApp(_config(sims, topics, tmp / f"a-{suffix}", broker))
    b = RouterApp(_config(sims, topics, tmp / f"b-{suffix}", broker), registry=CollectorRegistry())
    await a.start()
    await b.start()
    kafka = KafkaOptions(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
    metrics = ConsumerMetrics(CollectorRegistry())
    runners = [
        ConsumerRunner(
            job_named(kind),
            RunnerConfig(
                input_topic=topics["events"],
                snapshot_topic=topics[kind],
                group_id=f"bench-demote-{kind}-{suffix}",
                snapshot_interval_s=interval_s,
                create_topics=True,
            ),
            kafka,
            metrics,
        )
        for kind in ("health", "quality", "costs")
    ]
    return Trial(a, b, runners, topics)


async def wait_warm(runners: list[ConsumerRunner], fleet: FleetSignals) -> float:
    """Waits until the consumers own their partitions (returns when) and B's health is fresh."""
    while not all(r.partitions for r in runners):  # noqa: ASYNC110 - polled state, no event
        await asyncio.sleep(0.05)
    owned_at = time.monotonic()
    while Topic.HEALTH in fleet.view.stale:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return owned_at


async def open_breaker(a: RouterApp, sims: dict[str, SimServer]) -> float:
    """60 successes on sim-a/m1 through A, then sim-a fails every call until A's breaker opens;
    returns when it did (t0)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        request = pb.CompleteRequest(
            chat=pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content="hi")])
        )
        for _ in range(60):
            await stub.Complete(request)
        (await set_error_rate(sims["sim-a"], 1.0)).raise_for_status()
        while a.engine.live.breaker_state(FAILING, time.monotonic()) is not BreakerState.OPEN:
            await stub.Complete(request)
        return time.monotonic()


async def wait_demoted(fleet: FleetSignals, t0: float) -> float:
    while fleet.demoted.get(FAILING, 1.0) != fleet.config.min_share:
        await asyncio.sleep(0.01)
        assert time.monotonic() - t0 < 60, "B did not demote within 60 s"
    return time.monotonic()


def stage_times(t0: float, event: float, snapshot: float | None, demoted: float) -> dict[str, float]:
    """The stages' durations: breaker open -> event readable -> snapshot readable -> demoted."""
    at_snapshot = snapshot if snapshot is not None else float("nan")
    return {
        "event_s": event - t0,
        "snapshot_s": at_snapshot - event,
        "demoted_s": demoted - at_snapshot,
        "total_s": demoted - t0,
    }


async def set_error_rate(sim: SimServer, rate: float) -> httpx.Response:
    """Every model of the sim fails at `rate` from now on (its admin API)."""
    async with httpx.AsyncClient() as http:
        url = f"http://127.0.0.1:{sim.port}/admin/profile"
        return await http.post(url, json={"model": "*", "profile": {"error_rate": rate}})


async def stop_trial(t: Trial, tasks: list[asyncio.Task[None]], sims: dict[str, SimServer]) -> None:
    for r in t.runners:
        r.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    await t.b.stop(grace_s=1)
    await t.a.stop(grace_s=1)
    await set_error_rate(sims["sim-a"], 0.0)


async def main(trials: int) -> dict[str, Any]:
    scenarios = [("cold, interval 0.5 s", False, 0.5), ("warm, interval 0.5 s", True, 0.5)]
    scenarios.append(("warm, interval 5 s", True, 5.0))
    out: dict[str, Any] = {"trials": trials, "fleet_refresh_interval_s": REFRESH_S, "scenarios": {}}
    with tempfile.TemporaryDirectory() as tmp:
        async with EmbeddedBroker(log_path=Path(tmp) / "tansu.log") as broker:
            sims = {name: SimServer(preset_config("instant", seed=7)) for name in SIMS}
            for server in sims.values():
                await server.start()
            try:
                for round_ in range(trials):  # scenarios interleaved: the box's load hits all alike
                    for name, warm, interval in scenarios:
                        result = await trial(broker, sims, Path(tmp), warm=warm, interval_s=interval)
                        out["scenarios"].setdefault(name, []).append(result)
                        print(name, round_, {k: round(v, 2) for k, v in result.items()}, flush=True)
            finally:
                for server in sims.values():
                    await server.stop()
    for name, results in out["scenarios"].items():
        median = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(f"{name:22s} median " + "  ".join(f"{k}={v:.2f}" for k, v in median.items()))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    result = asyncio.run(main(args.trials))
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
