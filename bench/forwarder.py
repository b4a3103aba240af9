"""Event forwarder benchmark: CPU per event in the router and in its forwarder, against in-process.

    .venv/bin/python bench/forwarder.py                    # ~1 min
    .venv/bin/python bench/forwarder.py --seconds 8 --repeats 5

Starts an EmbeddedBroker (Tansu) and, per cell, a 3-partition topic and one publisher with the
production defaults (JSON, zstd, 150 ms linger): `inline` is the KafkaPublisher in this process,
`forwarder` the ForwardingPublisher with its forwarder child. Events come as a router makes them
(bench/event_publisher.py's requests: a decision, an attempt and a completion each, no ids),
paced as one loop callback per event at each rate: 1500/s is a router answering ~500 requests/s,
4500/s one at ~1500 (this machine's saturated rate at c=32); `burst` publishes 60,000 events in
bursts of 100 with a loop yield between, for what each sustains (`events/s`, first publish to
last ack; the forwarder's acks reach this process every 0.2 s, which the 60,000 make small).

Columns, microseconds of CPU per event, from the first publish to the broker's last ack:
- router      this process (time.process_time), minus the load generator's own CPU (measured
              running the same load into a publisher that discards events): what the router pays
- forwarder   the forwarder process (/proc of this process's children); 0 for inline
- total       both: what the machine pays, less the broker's share

Cells alternate inline and forwarder, `--repeats` times each; the median row of each is printed.
Writes bench/results/forwarder.json. Shared, noisy machine: compare rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from prometheus_client import CollectorRegistry

from bench.event_publisher import (
    _acked_count,
    _broker_up,
    _harness_cpu_s,
    _run_load,
    _Timers,
    _wait_for,
    request_events,
)
from bench.servers import children_cpu_s
from router_service.embedded.broker import EmbeddedBroker
from router_service.telemetry.forwarding_publisher import ForwardingPublisher
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.publisher import KafkaPublisher, PublisherConfig
from router_service.telemetry.publisher_metrics import PublisherMetrics

LOADS = ("paced/1500", "paced/4500", "burst")
BURST_EVENTS = 60_000  # enough for a second or more of sending: acks reach this process every 0.2 s
MODES = ("inline", "forwarder")


@dataclass
class Row:
    mode: str
    load: str
    events: int
    events_per_s: float
    router_us: float
    forwarder_us: float
    total_us: float


async def cell(broker: EmbeddedBroker, mode: str, load: str, seconds: float) -> Row:
    count = BURST_EVENTS if load == "burst" else int(float(load.split("/")[1]) * seconds)
    topic = f"bench.forwarder.{mode}.{time.monotonic_ns()}"
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
            queue_max=count,
        )
        publisher: KafkaPublisher | ForwardingPublisher = (
            KafkaPublisher(config, metrics=metrics)
            if mode == "inline"
            else ForwardingPublisher(config, metrics=metrics)
        )
        await publisher.start()
        await _wait_for(lambda: _broker_up(metrics), "the publisher to connect")
        started_cpu, started_children = time.process_time(), children_cpu_s(os.getpid())
        started = time.perf_counter()
        await _run_load(load, publisher.publish, events, _Timers())
        await _wait_for(lambda: _acked_count(metrics) >= count, f"{count} acks")
        elapsed = time.perf_counter() - started
        router_s = time.process_time() - started_cpu - harness_s
        forwarder_s = children_cpu_s(os.getpid()) - started_children
        await publisher.stop()
    per_event = 1e6 / count
    return Row(
        mode,
        load,
        count,
        count / elapsed,
        router_s * per_event,
        forwarder_s * per_event,
        (router_s + forwarder_s) * per_event,
    )


def print_rows(rows: list[Row]) -> None:
    header = f"{'mode':<10} {'load':<11} {'events':>7} {'events/s':>9} {'router us':>10} {'forwarder us':>13}"
    print(header + f" {'total us':>9}")
    for r in rows:
        print(
            f"{r.mode:<10} {r.load:<11} {r.events:>7} {r.events_per_s:>9.0f} {r.router_us:>10.1f}"
            f" {r.forwarder_us:>13.1f} {r.total_us:>9.1f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="length of a cell's load")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (median kept)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "forwarder.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs: dict[tuple[str, str], list[Row]] = {}
    async with EmbeddedBroker() as broker:
        await cell(broker, "inline", "paced/1500", 1.0)  # warm-up: imports, caches, broker
        for _ in range(args.repeats):
            for load in LOADS:
                for mode in MODES:
                    runs.setdefault((mode, load), []).append(await cell(broker, mode, load, args.seconds))
    rows = [sorted(rs, key=lambda r: r.total_us)[len(rs) // 2] for rs in runs.values()]
    print_rows(rows)
    results: dict[str, Any] = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": [asdict(r) for r in rows],
        "every_run": {f"{m}/{r}": [round(x.total_us, 1) for x in rs] for (m, r), rs in runs.items()},
        "median_total_us": {
            f"{m}/{r}": statistics.median(x.total_us for x in rs) for (m, r), rs in runs.items()
        },
    }
    args.output.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    asyncio.run(main())
