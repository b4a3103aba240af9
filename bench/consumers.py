"""Consumer benchmark: how many events per second one consumer process reads and aggregates.

    .venv/bin/python bench/consumers.py                 # 50,000 events per encoding, ~1-2 min
    .venv/bin/python bench/consumers.py --events 20000   # (or: python -m bench.consumers)

Starts an EmbeddedBroker (Tansu, loopback), publishes N events per encoding to a fresh 4-partition
topic with the router's own codec (JSON, the default, and protobuf), then, per cell, runs the
job's ConsumerRunner in this process (its own consumer group, snapshot interval 5 s, real snapshot
topic) until it has read every record. Events come as the router makes them: per request a
decision (6 candidates), an attempt and a completion, a feedback event for one request in three;
30 API keys, 5 teams, 6 models, 2 tags.

Columns:
- records/s   records read, decoded (the job's kinds only), deduplicated and aggregated per
              second, from the moment the runner owns its partitions (group join excluded) to
              the last record
- counted     events the job aggregated (costs: completions and attempts; health: attempts; quality: all three
              of its kinds); the rest are skipped on the `ce_type` header without decoding
- cpu us/rec  process CPU time per record over the same span (broker excluded: separate process)
- offline     the same decode + aggregation loop over records already in memory: the ceiling
              without Kafka fetches, flushes and commits

`(fetch)` is a bare aiokafka consumer reading the topic and doing nothing else: the broker's and
the client's share of the time, the ceiling for any job.

`all` runs the three jobs at once in one process (three groups; each record is read three times):
its records/s counts input records, i.e. how fast one process keeps up with the topic.

Writes bench/results/consumers.json. Shared, noisy machine: compare rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path and the file would shadow the
# `consumers` package it measures.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from consumers.dedupe import DedupeConfig
from consumers.jobs import JOBS, Job, JobOptions
from consumers.kafka import KafkaOptions, ensure_topic
from consumers.metrics import ConsumerMetrics
from consumers.partition import BatchStats, PartitionProcessor
from consumers.records import RecordReader
from consumers.runner import ConsumerRunner, RunnerConfig
from router_service import domain
from router_service.embedded.broker import EmbeddedBroker
from router_service.telemetry import event_codec
from router_service.telemetry import events as ev

PARTITIONS = 4
RESULTS = Path(__file__).parent / "results" / "consumers.json"
MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-haiku"),
          ("anthropic", "claude-sonnet"), ("sim-fast", "swift-1"), ("sim-cheap", "thrifty-1")]  # fmt: skip
TASKS = [domain.TaskType.CHAT, domain.TaskType.CODE, domain.TaskType.EXTRACTION, domain.TaskType.REASONING]


@dataclass
class Row:
    job: str
    encoding: str
    records: int
    counted: int
    seconds: float
    records_per_s: float
    cpu_us_per_record: float
    offline_records_per_s: float


# The events' two tag keys are cost dimensions here: the work measured before tag dimensions
# became opt-in (every tag was one).
BENCH_OPTIONS = JobOptions(cost_tag_dimensions=frozenset({"feature", "plan"}))


# --- events --------------------------------------------------------------------------------------


def request_events(count: int, seed: int = 1) -> list[ev.TelemetryEvent]:
    rng = random.Random(seed)
    events: list[ev.TelemetryEvent] = []
    i = 0
    while len(events) < count:
        events += _one_request(rng, f"req-{i:08d}-{uuid.uuid4().hex[:8]}", time.time())
        i += 1
    return events[:count]


def _one_request(rng: random.Random, request_id: str, now: float) -> list[ev.TelemetryEvent]:
    provider, model = rng.choice(MODELS)
    context = ev.RequestContext(
        request_id=request_id,
        api_key_id=f"key-{rng.randrange(30)}",
        team=f"team-{rng.randrange(5)}",
        customer=f"customer-{rng.randrange(10)}",
        tags={"feature": rng.choice(("chat", "search", "summarise")), "plan": rng.choice(("pro", "free"))},
    )
    decision = domain.RouteDecision(
        policy="balanced",
        strategy="cost",
        task_type=rng.choice(TASKS),
        chain=tuple(f"{p}/{m}" for p, m in MODELS[:3]),
        candidates=tuple(
            domain.CandidateView(p, m, True, "", 0.1 * k, 1000 * k) for k, (p, m) in enumerate(MODELS)
        ),
    )
    outcome = domain.AttemptOutcome.SUCCESS if rng.random() < 0.95 else domain.AttemptOutcome.ERROR
    attempt = domain.AttemptRecord(
        provider,
        model,
        outcome,
        rng.uniform(0.05, 3.0),
        error_class="" if outcome is domain.AttemptOutcome.SUCCESS else "overloaded",
        time_to_first_token_s=rng.uniform(0.02, 0.5),
        started_at_unix_s=now,
    )
    completion = ev.CompletionEvent(
        provider, model, domain.Usage(rng.randrange(1, 4000), rng.randrange(1, 1000), 0),
        rng.randrange(1, 10**9), 0.4, 1, False, domain.FinishReason.STOP,
    )  # fmt: skip
    bodies: list[ev.EventBody] = [ev.DecisionEvent(decision), ev.AttemptEvent(0, attempt, model), completion]
    if rng.random() < 1 / 3:
        bodies.append(ev.FeedbackEvent(round(rng.random(), 2)))
    return [ev.TelemetryEvent.create(context, body, now_unix_s=now) for body in bodies]


async def publish(bootstrap: str, topic: str, events: list[ev.TelemetryEvent], encoding: Any) -> None:
    """Publish with the router's codec, as the router's publisher would."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=False,
        acks="all",
        linger_ms=20,
        max_batch_size=256 << 10,
    )
    await producer.start()
    try:
        futures = []
        for event in events:
            key, value, headers = event_codec.encode(event, encoding)
            futures.append(await producer.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _fetch_all(bootstrap: str, topic: str, count: int) -> tuple[list[Any], float, float]:
    """Every record of the topic, with the seconds and CPU seconds a bare consumer took to read them."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        max_partition_fetch_bytes=RunnerConfig().max_partition_fetch_bytes,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        started, cpu_started = time.perf_counter(), time.process_time()
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                records += batch
        return records, time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await consumer.stop()


# --- measurements --------------------------------------------------------------------------------


def offline_rate(job: Job, records: list[Any]) -> float:
    """Decode + dedupe + aggregate of records already in memory, records per second."""
    reader = RecordReader(job.kinds)
    processors = {
        p: PartitionProcessor("t", p, job.new_aggregator(), DedupeConfig()) for p in range(PARTITIONS)
    }
    stats = BatchStats()
    started = time.perf_counter()
    for record in records:
        processors[record.partition].process([reader.read(record)], stats)
    return len(records) / (time.perf_counter() - started)


async def consume(bootstrap: str, topic: str, jobs: list[Job], total: int) -> tuple[float, float, int]:
    """Run the jobs' runners until each has read `total` records: (seconds, cpu seconds, counted)."""
    options = KafkaOptions(bootstrap_servers=bootstrap, enable_idempotence=False)
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    runners = []
    for job in jobs:
        snapshot_topic = f"bench.{job.name}.{uuid.uuid4().hex[:8]}"
        await ensure_topic(options, snapshot_topic, PARTITIONS, compacted=True)
        config = RunnerConfig(
            input_topic=topic,
            snapshot_topic=snapshot_topic,
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
            rebalance_timeout_ms=2000,
            heartbeat_interval_ms=500,
        )
        runners.append(ConsumerRunner(job, config, options, metrics))
    tasks = [asyncio.create_task(runner.run()) for runner in runners]

    def read(job: Job) -> float:
        return registry.get_sample_value("llmrouter_consumer_records_total", {"consumer": job.name}) or 0.0

    def owns_partitions() -> bool:
        return any(
            registry.get_sample_value("llmrouter_consumer_assigned_partitions", {"consumer": job.name})
            for job in jobs
        )

    # The clock starts when a runner owns its partitions (group join and restore excluded) and
    # stops when every runner has read every record.
    await _until(owns_partitions)
    started, cpu_started = time.perf_counter(), time.process_time()
    await _until(lambda: all(read(job) >= total for job in jobs))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    counted = sum(
        int(registry.get_sample_value("llmrouter_consumer_events_counted_total", {"consumer": job.name}) or 0)
        for job in jobs
    )
    for runner in runners:
        runner.stop()
    await asyncio.gather(*tasks)
    return seconds, cpu, counted


async def _until(condition: Callable[[], bool]) -> None:
    # Polls a metric: the runner has no hook for "done", and a 5 ms poll costs the loop nothing.
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def run(events_count: int) -> list[Row]:
    rows: list[Row] = []
    async with EmbeddedBroker() as broker:
        events = request_events(events_count)
        for encoding in ("json", "protobuf"):
            topic = f"bench.events.{encoding}.{uuid.uuid4().hex[:8]}"
            await ensure_topic(KafkaOptions(broker.bootstrap), topic, PARTITIONS, compacted=False)
            await publish(broker.bootstrap, topic, events, encoding)
            records, seconds, cpu = await _fetch_all(broker.bootstrap, topic, len(events))
            rows.append(row("(fetch)", encoding, len(events), 0, seconds, cpu, 0))
            print_row(rows[-1])
            jobs_measured = [job.configured(BENCH_OPTIONS) for job in JOBS.values()]
            cells = [[job] for job in jobs_measured] + [jobs_measured]
            for jobs in cells:
                name = jobs[0].name if len(jobs) == 1 else "all"
                seconds, cpu, counted = await consume(broker.bootstrap, topic, jobs, len(events))
                offline = (
                    offline_rate(jobs[0], records)
                    if len(jobs) == 1
                    else 1 / sum(1 / offline_rate(job, records) for job in jobs)
                )
                rows.append(row(name, encoding, len(events), counted, seconds, cpu, offline))
                print_row(rows[-1])
    return rows


def row(
    job: str, encoding: str, records: int, counted: int, seconds: float, cpu: float, offline: float
) -> Row:
    return Row(
        job=job,
        encoding=encoding,
        records=records,
        counted=counted,
        seconds=round(seconds, 3),
        records_per_s=round(records / seconds),
        cpu_us_per_record=round(cpu / records * 1e6, 1),
        offline_records_per_s=round(offline),
    )


def print_header() -> None:
    print(f"{'job':<8} {'encoding':<9} {'records':>8} {'counted':>8} {'seconds':>8} {'records/s':>10} "
          f"{'cpu us/rec':>10} {'offline/s':>10}")  # fmt: skip


def print_row(r: Row) -> None:
    print(f"{r.job:<8} {r.encoding:<9} {r.records:>8} {r.counted:>8} {r.seconds:>8.2f} "
          f"{r.records_per_s:>10,} {r.cpu_us_per_record:>10.1f} {r.offline_records_per_s:>10,}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print_header()
    rows = asyncio.run(run(args.events))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {"events": args.events, "partitions": PARTITIONS, "generated_at": time.time(),
             "rows": [asdict(row) for row in rows]},
            indent=2,
        )
        + "\n"
    )  # fmt: skip
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
