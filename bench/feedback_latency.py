"""Feedback latency: from failure events published by one router to a routing change in another.

    .venv/bin/python bench/feedback_latency.py                # 15 trials per interval, ~2 min
    .venv/bin/python bench/feedback_latency.py --trials 30 --intervals 5 1

Real parts: the embedded Tansu broker, the router's own KafkaPublisher (what instance A runs),
the health ConsumerRunner, and the router's SnapshotSubscriber feeding FleetSignals (what
instance B routes on). Per trial a fresh deployment key gets 30 overloaded-attempt events at once
(what a failing provider produces at ~30 requests); the latency is the time until B's signals
demote that deployment (`FleetSignals.demoted`, which the planner reads on every request).

Expected: about half the consumer's snapshot interval on average (the flush timer's phase is
random relative to the fault), plus up to one fleet refresh interval (1 s default), plus Kafka
hops. Trials start at random phases. Writes bench/results/feedback_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

# Run as a script, this file's directory would shadow the `consumers` package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from prometheus_client import CollectorRegistry

from consumers.jobs import job_named
from consumers.kafka import KafkaOptions
from consumers.metrics import ConsumerMetrics
from consumers.runner import ConsumerRunner, RunnerConfig
from router_service import domain
from router_service.embedded.broker import EmbeddedBroker
from router_service.fleet.config import FleetConfig
from router_service.fleet.metrics import FleetMetrics
from router_service.fleet.signals import FleetSignals
from router_service.fleet.subscriber import SnapshotSubscriber
from router_service.resilience.live_state import LiveState
from router_service.telemetry import events as ev
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.publisher import KafkaPublisher
from router_service.telemetry.publisher_config import PublisherConfig

RESULTS = Path(__file__).resolve().parent / "results" / "feedback_latency.json"
FAILURES_PER_TRIAL = 30


def _failures(deployment: str, now_s: float) -> list[ev.TelemetryEvent]:
    provider, model = deployment.split("/")
    out = []
    for _ in range(FAILURES_PER_TRIAL):
        record = domain.AttemptRecord(
            provider, model, domain.AttemptOutcome.ERROR, 0.01, error_class="overloaded"
        )
        context = ev.RequestContext(request_id=uuid.uuid4().hex)
        out.append(ev.TelemetryEvent.create(context, ev.AttemptEvent(0, record, model), now_unix_s=now_s))
    return out


async def measure(bootstrap: str, interval_s: float, trials: int, spool: Path) -> list[float]:
    suffix = uuid.uuid4().hex[:8]
    events_topic, health_topic = f"bench.fb.events.{suffix}", f"bench.fb.health.{suffix}"
    await ensure_topics(bootstrap, {events_topic: 4})
    runner = ConsumerRunner(
        job_named("health"),
        RunnerConfig(
            input_topic=events_topic,
            snapshot_topic=health_topic,
            group_id=f"bench-fb-{suffix}",
            snapshot_interval_s=interval_s,
            create_topics=True,
        ),
        KafkaOptions(bootstrap_servers=bootstrap, enable_idempotence=False),
        ConsumerMetrics(CollectorRegistry()),
    )
    consumer_task = asyncio.create_task(runner.run())
    config = FleetConfig(health_topic=health_topic, quality_topic="", costs_topic="")
    signals = FleetSignals(LiveState(), config)
    subscriber = SnapshotSubscriber(
        bootstrap, config, signals.update, metrics=FleetMetrics(CollectorRegistry())
    )
    subscriber.start()
    publisher = KafkaPublisher(
        PublisherConfig(
            bootstrap_servers=bootstrap, topic=events_topic, enable_idempotence=False, spool_dir=str(spool)
        )
    )
    await publisher.start()
    latencies: list[float] = []
    try:
        await asyncio.sleep(interval_s + 3)  # the consumer has joined its group and flushed once
        for trial in range(trials):
            await asyncio.sleep(random.uniform(0, interval_s))  # a random phase against the flush timer
            deployment = f"bench-{trial}/m"
            started = time.monotonic()
            for event in _failures(deployment, time.time()):
                publisher.publish(event)
            while deployment not in signals.demoted:
                if time.monotonic() - started > 10 * interval_s + 30:
                    raise TimeoutError(f"trial {trial}: no routing change")
                await asyncio.sleep(0.005)
            latencies.append(time.monotonic() - started)
            print(
                f"  interval {interval_s:>4}s  trial {trial + 1:>2}: {latencies[-1] * 1000:7.0f} ms",
                flush=True,
            )
    finally:
        await publisher.stop()
        await subscriber.stop()
        runner.stop()
        await asyncio.gather(consumer_task, return_exceptions=True)
    return latencies


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(intervals: list[float], trials: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        async with EmbeddedBroker() as broker:
            for interval in intervals:
                latencies = await measure(broker.bootstrap, interval, trials, Path(tmp) / f"spool-{interval}")
                rows.append(
                    {
                        "snapshot_interval_s": interval,
                        "refresh_interval_s": FleetConfig().refresh_interval_s,
                        "trials": trials,
                        "p50_ms": round(_quantile(latencies, 0.5) * 1000),
                        "p95_ms": round(_quantile(latencies, 0.95) * 1000),
                        "mean_ms": round(statistics.fmean(latencies) * 1000),
                        "max_ms": round(max(latencies) * 1000),
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument(
        "--intervals", type=float, nargs="+", default=[5.0, 1.0], help="consumer snapshot intervals"
    )
    args = parser.parse_args()
    rows = asyncio.run(run(args.intervals, args.trials))
    print(f"\n{'snapshot interval':>18} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'max ms':>8}")
    for r in rows:
        cells = (r["p50_ms"], r["p95_ms"], r["mean_ms"], r["max_ms"])
        print(f"{r['snapshot_interval_s']:>17}s " + " ".join(f"{c:>8}" for c in cells))
    RESULTS.write_text(json.dumps({"generated_at": time.time(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
