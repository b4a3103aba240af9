"""Kafka producers side by side: what sending the router's encoded events costs, and on which thread.

    .venv/bin/python bench/producers.py                    # ~30 s
    .venv/bin/python bench/producers.py --events 60000

One embedded broker (Tansu), one 3-partition topic per cell. The router's events (decision,
attempt, completion per request, bench/event_publisher.py's `request_events`) are encoded once
with the production encoder (JSON), then sent in rounds of 500 with zstd, acks=all, as the
publisher sends them, through:

- aiokafka      the publisher's path (record_batches.send_batches on an AIOKafkaProducer: one
                closed batch per partition and round), all of it on the event loop's thread
- aiokafka-send the same producer through its plain per-record API, `send()` for each record: what
                record_batches.py saves (it stays only if that is >= 1% of a call's CPU, ~2 us an
                event at 3 events per call of ~600 us)
- confluent     confluent-kafka's Producer (librdkafka): `produce()` per record on the calling
                thread, batching, compression and I/O on librdkafka's own threads, outside the GIL.
                Only when the confluent-kafka package is importable (it is not a dependency);
                skipped otherwise

Columns, microseconds of CPU per event from the first send to the last ack: `caller` is the
thread that sends (the router's event loop: what it would pay), `total` the whole process
(librdkafka's threads included). The broker is another process and not counted. Cells
alternate, `--repeats` times; medians. Writes bench/results/producers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from aiokafka import AIOKafkaProducer

from bench.event_publisher import request_events
from router_service.embedded.broker import EmbeddedBroker
from router_service.telemetry import event_codec
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.record_batches import send_batches
from router_service.telemetry.spool import SpoolRecord

OUTPUT = Path(__file__).resolve().parent / "results" / "producers.json"
ROUND = 500


@dataclass
class Row:
    producer: str
    events: int
    caller_us: float
    total_us: float
    events_per_s: float


def encoded(count: int, topic: str) -> list[SpoolRecord]:
    encoder = event_codec.RecordEncoder("json", "bench-router")
    records = []
    for event in request_events(count):
        key, value, headers = encoder.encode(event)
        records.append(SpoolRecord(topic, key, value, headers))
    return records


async def aiokafka_cell(bootstrap: str, records: list[SpoolRecord], *, per_record: bool = False) -> Row:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,  # Tansu lacks it
        compression_type="zstd",
        linger_ms=0,
        max_batch_size=256 << 10,
    )
    await producer.start()
    try:
        started_wall, started_thread, started_cpu = time.monotonic(), time.thread_time(), time.process_time()
        for first in range(0, len(records), ROUND):
            batch = records[first : first + ROUND]
            if per_record:
                futures = [
                    await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers)) for r in batch
                ]
            else:
                sent = await send_batches(producer, batch, 1 << 20, lambda _: None)
                futures = [one.future for one in sent]
            await asyncio.gather(*futures)
        wall = time.monotonic() - started_wall
        thread, cpu = time.thread_time() - started_thread, time.process_time() - started_cpu
    finally:
        await producer.stop()
    per_event = 1e6 / len(records)
    name = "aiokafka-send" if per_record else "aiokafka"
    return Row(name, len(records), thread * per_event, cpu * per_event, len(records) / wall)


def confluent_cell(bootstrap: str, records: list[SpoolRecord]) -> Row | None:
    try:
        from confluent_kafka import Producer  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": False,
            "compression.type": "zstd",
            "linger.ms": 5,
        }
    )
    failed: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    producer.list_topics(timeout=10)  # connected before the clock starts, as aiokafka's start()
    started_wall, started_thread, started_cpu = time.monotonic(), time.thread_time(), time.process_time()
    for first in range(0, len(records), ROUND):
        for record in records[first : first + ROUND]:
            producer.produce(
                record.topic, record.value, record.key, headers=list(record.headers), on_delivery=on_delivery
            )
        producer.poll(0)
    left = producer.flush(60)
    wall = time.monotonic() - started_wall
    thread, cpu = time.thread_time() - started_thread, time.process_time() - started_cpu
    if left or failed:
        raise RuntimeError(f"confluent: {left} undelivered, {len(failed)} failed ({failed[:1]})")
    per_event = 1e6 / len(records)
    return Row("confluent", len(records), thread * per_event, cpu * per_event, len(records) / wall)


async def run(events: int, repeats: int) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-producers-") as tmp:
        broker = EmbeddedBroker(log_path=Path(tmp) / "tansu.log")
        await broker.start()
        try:
            for _ in range(repeats):
                for name in ("aiokafka", "aiokafka-send", "confluent"):
                    topic = f"bench.producers.{uuid.uuid4().hex[:8]}"
                    await ensure_topics(broker.bootstrap, {topic: 3})
                    records = encoded(events, topic)
                    if name.startswith("aiokafka"):
                        per_record = name == "aiokafka-send"
                        rows.append(await aiokafka_cell(broker.bootstrap, records, per_record=per_record))
                    else:
                        row = await asyncio.to_thread(confluent_cell, broker.bootstrap, records)
                        if row is not None:
                            rows.append(row)
        finally:
            await broker.kill()
    return rows


def medians(rows: list[Row]) -> list[Row]:
    out = []
    for name in dict.fromkeys(row.producer for row in rows):
        group = [row for row in rows if row.producer == name]
        out.append(
            Row(
                name,
                group[0].events,
                statistics.median(r.caller_us for r in group),
                statistics.median(r.total_us for r in group),
                statistics.median(r.events_per_s for r in group),
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.events, args.repeats))
    summary = medians(rows)
    print(f"{'producer':<10} {'events':>7} {'caller us':>10} {'total us':>9} {'events/s':>9}")
    for r in summary:
        print(
            f"{r.producer:<10} {r.events:>7} {r.caller_us:>10.2f} {r.total_us:>9.2f} {r.events_per_s:>9.0f}"
        )
    if not any(r.producer == "confluent" for r in summary):
        print("confluent-kafka is not installed: its row is missing")
    report = {
        "benchmark": "kafka producers",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "summary": [asdict(r) for r in summary],
        "rows": [asdict(r) for r in rows],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
