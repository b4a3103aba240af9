"""Snapshot values on the wire: size and per-value encode/decode cost of each encoding.

    .venv/bin/python -m bench.snapshot_codec            # ~5 s

Values are the consumers' own (a health deployment with 12 successes and 2 errors in one slot, a
cost dimension with minute/hour/day windows, a quality model x task with six scored requests).
Rows per kind (best of `--reps`, microseconds per value; bytes per value):
- legacy      json.loads of the consumers' JSON from before router.v1.Snapshot (no schema)
- protobuf    snapshot_records.decode of router.v1.Snapshot in protobuf binary (the default)
- json        the same in its proto3 JSON mapping (`--snapshot-encoding json`)
Decode is what a restore and a router's fleet view pay per record read; encode what a flush pays.
Writes bench/results/snapshot_codec.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from consumers import events as ce
from consumers.aggregator import Aggregator
from consumers.costs.aggregate import CostsAggregator
from consumers.dedupe import DedupeConfig
from consumers.health.aggregate import HealthAggregator
from consumers.partition import BatchStats, InputRecord, PartitionProcessor
from consumers.quality.aggregate import QualityAggregator
from router_contract import snapshot_records as sr

T0 = 1_795_046_400.0
RESULTS = Path(__file__).resolve().parent / "results" / "snapshot_codec.json"


def _event(body: ce.Body, offset: int, request_id: str) -> ce.Event:
    envelope = ce.Envelope(
        event_id=f"e{offset}",
        event_time_s=T0 + offset / 10,
        request_id=request_id,
        team="search",
        api_key_id="key-1",
        customer="acme",
        tags={},
    )
    return ce.Event(envelope, body)


def _value(aggregator: Aggregator, bodies: Sequence[tuple[ce.Body, str]]) -> dict[str, Any]:
    processor = PartitionProcessor("llmrouter.events.v1", 0, aggregator, DedupeConfig())
    records = [
        InputRecord(offset, int(T0 * 1000), f"e{offset}", _event(body, offset, rid))
        for offset, (body, rid) in enumerate(bodies)
    ]
    processor.process(records, BatchStats())
    values = [change.value for change in processor.changes(T0 + 10) if change.value is not None]
    return max(values, key=lambda value: len(json.dumps(value)))


def values() -> dict[str, dict[str, Any]]:
    health = [
        (ce.Attempt("openai", "gpt-4o", "success", latency_ms=180 + i, ttft_ms=40 + i), f"r{i}")
        for i in range(12)
    ]
    health += [(ce.Attempt("openai", "gpt-4o", "error", "rate_limited", latency_ms=3), "x1")] * 2
    costs = [
        (ce.Completion("openai", "gpt-4o", 1200, 300, 100, cost_nanos_usd=987_654_321), f"c{i}")
        for i in range(5)
    ]
    quality: list[tuple[ce.Body, str]] = []
    for i in range(6):
        quality += [
            (ce.Decision("code", "p/m1"), f"q{i}"),
            (ce.Completion("p", "m1"), f"q{i}"),
            (ce.Feedback(0.1 * i), f"q{i}"),
        ]
    return {
        "health": _value(HealthAggregator(), health),
        "costs": _value(CostsAggregator(), costs),
        "quality": _value(QualityAggregator(), quality),
    }


def _best_us(call: Callable[[], object], number: int, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - started) / number)
    return round(best * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for kind, value in values().items():
        legacy = json.dumps(value, separators=(",", ":")).encode()
        row: dict[str, Any] = {
            "legacy": {
                "bytes": len(legacy),
                "decode_us": _best_us(lambda: json.loads(legacy), args.number, args.reps),  # noqa: B023
            }
        }
        for encoding in sr.SNAPSHOT_ENCODINGS:
            wire = sr.encode(value, encoding)
            headers = sr.headers(encoding)
            row[encoding] = {
                "bytes": len(wire),
                "decode_us": _best_us(lambda: sr.decode(wire, headers), args.number, args.reps),  # noqa: B023
                "encode_us": _best_us(lambda: sr.encode(value, encoding), args.number, args.reps),  # noqa: B023
            }
        results[kind] = row
        print(kind, json.dumps(row))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
