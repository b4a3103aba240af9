"""Event publisher benchmark: what telemetry costs the router process, and what it sustains into Kafka.

    .venv/bin/python bench/event_publisher.py                  # both tables
    .venv/bin/python bench/event_publisher.py --only cpu       # CPU per event only (~1 min)
    .venv/bin/python bench/event_publisher.py --events 5000

Starts an EmbeddedBroker (Tansu, loopback, its own process), creates a 3-partition topic per cell
and runs one KafkaPublisher per cell (acks=all; idempotence off, which Tansu needs). Events come as
requests would make them: per request one decision (6 candidates), one attempt and one completion.

CPU per event (the router's cost: the publisher shares the router's one core). `time.process_time`
of this process from the first publish() to the broker's last ack, divided by the events; the
broker is another process, so its CPU is not counted. Loads:

- burst         every event at once, in bursts of 100 with an event-loop yield between bursts
- paced/<rate>  one event at a time at <rate> events/s (each from its own loop callback, as
                request tasks would publish them); 1500/s is about the router's saturated rate
                (3 events per request), 300/s a lightly loaded router

Columns (microseconds per event):
- durable       "call": events.durable as it runs (a request's decision and attempt written with
                its completion, one write per request); "event": one write per event, as before
                (bench-only switch); "no": durable off
- publish       inside publish() calls less the encoding: the queue and, with `durable` (the
                default), the write to the spool
- encode        inside the publisher's encoding step (KafkaPublisher._encode, called by publish()
                for each event)
- send          inside the hand-off of encoded records to aiokafka (KafkaPublisher._send_all; it
                does not suspend unless aiokafka's buffer is full, which this bench never fills)
- kafka+loop    the rest: aiokafka's sender task (produce requests, compression, socket I/O, acks),
                the publisher's sender loop, waits and asyncio scheduling
- total         all of the above; the load generator's own CPU (measured by running the same load
                into a publisher that discards events) is subtracted

The encode and send columns patch timers around those two private methods for the measurement.

Throughput (the original table): per cell, all events in bursts of 100:
- publish us    mean cost of one `publish()` call (the only part on the request path)
- encode us     mean cost of encoding one event with `event_codec.encode`, in isolation
- events/s      events acknowledged by the broker per second, first publish to last ack

Writes bench/results/event_publisher.json. Shared, noisy machine: compare rows of one run.

No before/after (`--baseline`) here: the publisher runs in this process, and one interpreter
cannot import two trees' router_service. Publishing before and after a change, in one run, is
bench/publishing.py --baseline DIR (whole routers from both trees in the same rounds: the old
forwarder and today's in-process publisher, router and children CPU per call and per event).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from router_service import domain
from router_service.embedded.broker import EmbeddedBroker
from router_service.telemetry import event_codec
from router_service.telemetry import events as ev
from router_service.telemetry import write_ahead as write_ahead_module
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.publisher import KafkaPublisher, PublisherConfig
from router_service.telemetry.publisher_config import DEFAULT_LINGER_MS
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
# CPU cells: the production default (json, zstd, durable) first; durable off for the log's cost;
# "per_event_writes": the durable log as it was before one write per call (every event written
# when published, as if none were held for its call's terminal event), for the A/B.
CPU_CELLS: list[dict[str, Any]] = [
    {"encoding": "json", "compression_type": "zstd", "durable": True},
    {"encoding": "json", "compression_type": "zstd", "durable": True, "per_event_writes": True},
    {"encoding": "json", "compression_type": "zstd", "durable": False},
    {"encoding": "protobuf", "compression_type": "zstd", "durable": True},
]
PACED_RATES = (1500, 300)  # events/s
BURST = 100
ACK_TIMEOUT_S = 120.0


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
    events = []
    for i in range(0, count, 3):
        # A distinct request id and time per request, as in production (partition hashing and
        # time formatting must not be flattered by repeated inputs).
        context = ev.RequestContext(request_id=f"req-{i:08d}-bench", tags={"feature": "bench"})
        now = time.time()
        for body in (ev.DecisionEvent(decision), ev.AttemptEvent(0, attempt, "m0-2024"), completion):
            # As the engine publishes them: no id yet, the publisher's encoder draws it.
            events.append(ev.TelemetryEvent(context, body, "", now))
    return events[:count]


# --- CPU per event -------------------------------------------------------------------------------


@dataclass
class CpuRow:
    encoding: str
    compression_type: str
    durable: bool
    per_event_writes: bool
    load: str
    linger_ms: int
    events: int
    events_per_s: float
    publish_us: float
    encode_us: float
    send_us: float
    kafka_loop_us: float
    total_us: float
    harness_us: float


@dataclass
class _Timers:
    """process_time seconds accumulated inside the publisher's steps during one measurement."""

    publish: float = 0.0
    encode: float = 0.0
    send: float = 0.0


@contextlib.contextmanager
def _timed_steps(timers: _Timers) -> Iterator[None]:
    """Wrap KafkaPublisher._encode and _send_all with process_time accumulators."""
    encode_all, send_all = KafkaPublisher._encode, KafkaPublisher._send_all

    def timed_encode_all(self: KafkaPublisher, *args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return encode_all(self, *args, **kwargs)
        finally:
            timers.encode += time.process_time() - started

    async def timed_send_all(self: KafkaPublisher, *args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return await send_all(self, *args, **kwargs)
        finally:
            timers.send += time.process_time() - started

    KafkaPublisher._encode = timed_encode_all  # type: ignore[method-assign]
    KafkaPublisher._send_all = timed_send_all  # type: ignore[method-assign]
    try:
        yield
    finally:
        KafkaPublisher._encode = encode_all  # type: ignore[method-assign]
        KafkaPublisher._send_all = send_all  # type: ignore[method-assign]


@contextlib.contextmanager
def _per_event_writes(enabled: bool) -> Iterator[None]:
    """With `enabled`, hold no event for its call's terminal one: one log write per event."""
    held = write_ahead_module._held_for_terminal
    if enabled:
        write_ahead_module._held_for_terminal = lambda body: False
    try:
        yield
    finally:
        write_ahead_module._held_for_terminal = held


class _DiscardingPublisher:
    """Stands in for the publisher to measure the load generator's own CPU."""

    def publish(self, event: ev.TelemetryEvent) -> None:
        return None


Publish = Callable[[ev.TelemetryEvent], None]


async def _burst_load(publish: Publish, events: list[ev.TelemetryEvent], timers: _Timers) -> None:
    for first in range(0, len(events), BURST):
        started = time.process_time()
        for event in events[first : first + BURST]:
            publish(event)
        timers.publish += time.process_time() - started
        await asyncio.sleep(0)


async def _paced_load(
    publish: Publish, events: list[ev.TelemetryEvent], timers: _Timers, rate: float
) -> None:
    """One loop callback per event, at its due time: arrivals spread like separate requests'."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def fire(event: ev.TelemetryEvent, last: bool) -> None:
        started = time.process_time()
        publish(event)
        timers.publish += time.process_time() - started
        if last:
            done.set_result(None)

    start = loop.time() + 0.01
    for i, event in enumerate(events):
        loop.call_at(start + i / rate, fire, event, i == len(events) - 1)
    await done


async def _run_load(load: str, publish: Publish, events: list[ev.TelemetryEvent], timers: _Timers) -> None:
    if load == "burst":
        await _burst_load(publish, events, timers)
    else:
        await _paced_load(publish, events, timers, float(load.split("/")[1]))


async def _harness_cpu_s(load: str, events: list[ev.TelemetryEvent]) -> float:
    sink = _DiscardingPublisher()
    started = time.process_time()
    await _run_load(load, sink.publish, events, _Timers())
    return time.process_time() - started


async def cpu_cell(
    broker: EmbeddedBroker, cell: dict[str, Any], load: str, count: int, linger_ms: int | None = None
) -> CpuRow:
    topic = f"bench.cpu.{cell['encoding']}.{time.monotonic_ns()}"
    await ensure_topics(broker.bootstrap, {topic: 3})
    events = request_events(count)
    harness_s = await _harness_cpu_s(load, events)
    metrics = PublisherMetrics(CollectorRegistry())
    with tempfile.TemporaryDirectory() as spool_dir:
        config = PublisherConfig(
            bootstrap_servers=broker.bootstrap,
            topic=topic,
            spool_dir=spool_dir,
            enable_idempotence=False,
            encoding=cell["encoding"],
            compression_type=cell["compression_type"],
            queue_max=count,
            linger_ms=DEFAULT_LINGER_MS if linger_ms is None else linger_ms,
            durable=cell["durable"],
        )
        publisher = KafkaPublisher(config, metrics=metrics)
        await publisher.start()
        await _wait_for(lambda: _broker_up(metrics), "the publisher to connect")
        timers = _Timers()
        with _timed_steps(timers), _per_event_writes(cell.get("per_event_writes", False)):
            started_cpu, started = time.process_time(), time.perf_counter()
            await _run_load(load, publisher.publish, events, timers)
            await _wait_for(lambda: _acked_count(metrics) >= count, f"{count} acks")
            cpu_s, elapsed = time.process_time() - started_cpu, time.perf_counter() - started
        await publisher.stop()
    total_s = cpu_s - harness_s
    per_event = 1e6 / count
    return CpuRow(
        encoding=cell["encoding"],
        compression_type=cell["compression_type"],
        durable=config.durable,
        per_event_writes=cell.get("per_event_writes", False),
        load=load,
        linger_ms=config.linger_ms,
        events=count,
        events_per_s=count / elapsed,
        publish_us=(timers.publish - timers.encode) * per_event,  # publish() encodes
        encode_us=timers.encode * per_event,
        send_us=timers.send * per_event,
        kafka_loop_us=(total_s - timers.publish - timers.send) * per_event,
        total_us=total_s * per_event,
        harness_us=harness_s * per_event,
    )


def _broker_up(metrics: PublisherMetrics) -> bool:
    return bool(metrics.broker_up._value.get() == 1)  # read directly: a registry scan costs CPU


def _acked_count(metrics: PublisherMetrics) -> float:
    return float(sum(metrics.published.labels(type=kind)._value.get() for kind in ev.EVENT_KINDS))


async def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + ACK_TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def cpu_rows(
    broker: EmbeddedBroker, burst_events: int, paced_s: float, repeats: int, linger_ms: int | None
) -> list[CpuRow]:
    """Each cell `repeats` times, interleaved; the median row (by total) is kept."""
    loads = ["burst", *(f"paced/{rate}" for rate in PACED_RATES)]
    counts = {"burst": burst_events, **{f"paced/{rate}": int(rate * paced_s) for rate in PACED_RATES}}
    await cpu_cell(broker, CPU_CELLS[0], "burst", 3000)  # warm-up: imports, caches, broker
    runs: dict[tuple[int, str], list[CpuRow]] = {}
    for _ in range(repeats):
        for index, cell in enumerate(CPU_CELLS):
            for load in loads:
                row = await cpu_cell(broker, cell, load, counts[load], linger_ms)
                runs.setdefault((index, load), []).append(row)
    return [_median_row(rows) for rows in runs.values()]


def _median_row(rows: list[CpuRow]) -> CpuRow:
    median = statistics.median_low(row.total_us for row in rows)
    return next(row for row in rows if row.total_us == median)


def print_cpu_rows(rows: list[CpuRow]) -> None:
    lingers = sorted({row.linger_ms for row in rows})
    print(f"CPU per event in the publishing process (us; median of repeats; linger_ms {lingers})")
    header = ["encoding", "compr", "durable", "load", "events/s"]
    header += ["publish", "encode", "send", "kafka+loop", "total"]
    print("{:<10}{:<7}{:<8}{:<12}{:>9}{:>9}{:>8}{:>7}{:>11}{:>8}".format(*header))
    for row in rows:
        print(
            f"{row.encoding:<10}{row.compression_type:<7}{_log_writes(row):<8}{row.load:<12}"
            f"{row.events_per_s:>9.0f}"
            f"{row.publish_us:>9.2f}{row.encode_us:>8.1f}{row.send_us:>7.1f}{row.kafka_loop_us:>11.1f}"
            f"{row.total_us:>8.1f}"
        )


def _log_writes(row: CpuRow) -> str:
    """The durable column: per call (the default), per event (the old way), or no log."""
    return ("event" if row.per_event_writes else "call") if row.durable else "no"


# --- throughput -----------------------------------------------------------------------------------


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
        await _wait_for(lambda: _acked_count(metrics) >= count, f"{count} acks")
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


def print_throughput_rows(rows: list[dict[str, Any]]) -> None:
    header = ("encoding", "compression", "queue", "publish us", "encode us", "events/s", "spooled")
    print("{:<10}{:<13}{:>7}{:>11}{:>11}{:>10}{:>9}".format(*header))
    for row in rows:
        print(
            f"{row['encoding']:<10}{row['compression_type']:<13}{row['queue_max'] or 'all':>7}"
            f"{row['publish_us']:>11.2f}{row['encode_us']:>11.1f}{row['events_per_s']:>10.0f}{row['spooled']:>9.0f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events per burst cell")
    parser.add_argument("--paced-seconds", type=float, default=4.0, help="duration of a paced cell")
    parser.add_argument("--repeats", type=int, default=3, help="runs per CPU cell (median kept)")
    parser.add_argument("--only", choices=("cpu", "throughput"), help="run one table only")
    parser.add_argument(
        "--linger-ms", type=int, help="publisher linger for the CPU cells (default: config's)"
    )
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "event_publisher.json"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    async with EmbeddedBroker() as broker:
        if args.only != "throughput":
            cpu = await cpu_rows(broker, args.events, args.paced_seconds, args.repeats, args.linger_ms)
            results["cpu_rows"] = [asdict(row) for row in cpu]
            print_cpu_rows(cpu)
        if args.only != "cpu":
            rows = [await run_cell(broker, cell, args.events) for cell in CELLS]
            results["rows"] = rows
            print_throughput_rows(rows)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    asyncio.run(main())
