"""Event publisher benchmark: what telemetry costs the request path, and what it sustains into Kafka.

    .venv/bin/python bench/event_publisher.py            # 20,000 events per cell
    .venv/bin/python bench/event_publisher.py --events 5000

Starts an EmbeddedBroker (Tansu, loopback), creates a 3-partition topic per cell and runs one
KafkaPublisher per cell (acks=all; idempotence off, which Tansu needs). Events come as requests
would make them: per request one decision (6 candidates), one attempt and one completion, published
in bursts of 100 with an event-loop yield between bursts. Columns:

- publish us    mean cost of one `publish()` call (the only part on the request path)
- encode us     mean cost of encoding one event (paid by the sender task, off the request path)
- events/s      events acknowledged by the broker per second, first publish to last ack

Writes bench/results/event_publisher.json. Shared, noisy machine: compare rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from router_service import domain
from router_service.embedded.broker import EmbeddedBroker
from router_service.telemetry import event_codec
from router_service.telemetry import events as ev
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.publisher import KafkaPublisher, PublisherConfig
from router_service.telemetry.publisher_metrics import PublisherMetrics

# queue_max=None: a queue big enough for the whole burst (the in-memory path); a small queue
# shows the overflow path, where most events go through the disk spool.
CELLS: list[dict[str, Any]] = [
    {"encoding": "json", "compression_type": "gzip", "queue_max": None},
    {"encoding": "json", "compression_type": "none", "queue_max": None},
    {"encoding": "json", "compression_type": "lz4", "queue_max": None},
    {"encoding": "json", "compression_type": "zstd", "queue_max": None},
    {"encoding": "protobuf", "compression_type": "gzip", "queue_max": None},
    {"encoding": "json", "compression_type": "gzip", "queue_max": 1000},
]
BURST = 100


def request_events(count: int) -> list[ev.TelemetryEvent]:
    decision = domain.RouteDecision(
        policy="balanced",
        strategy="cost",
        task_type=domain.TaskType.CHAT,
        chain=("p0/m0", "p1/m1", "p2/m2"),
        candidates=tuple(
            domain.CandidateView(f"p{i}", f"m{i}", i < 4, "" if i < 4 else "cooldown", 0.1 * i, 1000 * i)
            for i in range(6)
        ),
    )
    attempt = domain.AttemptRecord(
        "p0", "m0", domain.AttemptOutcome.SUCCESS, 0.35, started_at_unix_s=time.time()
    )
    completion = ev.CompletionEvent(
        "p0", "m0", domain.Usage(812, 221, 0), 1_234_567, 0.36, 1, False, domain.FinishReason.STOP
    )
    now = time.time()
    events = []
    for i in range(0, count, 3):
        context = ev.RequestContext(request_id=f"req-{i}", tags={"feature": "bench"})
        for body in (ev.DecisionEvent(decision), ev.AttemptEvent(0, attempt, "m0-2024"), completion):
            events.append(ev.TelemetryEvent.create(context, body, now_unix_s=now))
    return events[:count]


def encode_cost_us(events: list[ev.TelemetryEvent], encoding: Any) -> float:
    started = time.perf_counter()
    for event in events:
        event_codec.encode(event, encoding)
    return (time.perf_counter() - started) / len(events) * 1e6


async def run_cell(broker: EmbeddedBroker, cell: dict[str, Any], count: int) -> dict[str, Any]:
    topic = f"bench.events.{cell['encoding']}.{cell['compression_type']}.{time.monotonic_ns()}"
    await ensure_topics(broker.bootstrap, {topic: 3})
    registry = CollectorRegistry()
    metrics = PublisherMetrics(registry)
    with tempfile.TemporaryDirectory() as spool_dir:
        config = PublisherConfig(
            bootstrap_servers=broker.bootstrap,
            topic=topic,
            spool_dir=spool_dir,
            enable_idempotence=False,
            encoding=cell["encoding"],
            compression_type=cell["compression_type"],
            queue_max=cell["queue_max"] or count,
        )
        publisher = KafkaPublisher(config, metrics=metrics)
        await publisher.start()
        events = request_events(count)
        publish_s = 0.0
        started = time.perf_counter()
        for first in range(0, count, BURST):
            burst_started = time.perf_counter()
            for event in events[first : first + BURST]:
                publisher.publish(event)
            publish_s += time.perf_counter() - burst_started
            await asyncio.sleep(0)
        deadline = time.monotonic() + 120
        while _acked(registry) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {_acked(registry):.0f} of {count} events acknowledged")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        await publisher.stop()
    return {
        **cell,
        "events": count,
        "publish_us": publish_s / count * 1e6,
        "encode_us": encode_cost_us(events[:3000], cell["encoding"]),
        "events_per_s": count / elapsed,
        "spooled": registry.get_sample_value("llmrouter_events_spooled_total") or 0.0,
    }


def _acked(registry: CollectorRegistry) -> float:
    return sum(
        registry.get_sample_value("llmrouter_events_published_total", {"type": kind}) or 0.0
        for kind in ev.EVENT_KINDS
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    async with EmbeddedBroker() as broker:
        rows = [await run_cell(broker, cell, args.events) for cell in CELLS]
    header = ("encoding", "compression", "queue", "publish us", "encode us", "events/s", "spooled")
    print("{:<10}{:<13}{:>7}{:>11}{:>11}{:>10}{:>9}".format(*header))
    for row in rows:
        print(
            f"{row['encoding']:<10}{row['compression_type']:<13}{row['queue_max'] or 'all':>7}"
            f"{row['publish_us']:>11.2f}{row['encode_us']:>11.1f}{row['events_per_s']:>10.0f}{row['spooled']:>9.0f}"
        )
    out = Path(__file__).parent / "results" / "event_publisher.json"
    out.write_text(
        json.dumps({"rows": rows, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2)
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(main())
