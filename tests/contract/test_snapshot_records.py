"""router.v1.Snapshot: what the consumers publish reads back, in both encodings, as what they built.

The values come from the consumers' own aggregators and partition processor, so a field they add
without a place in the schema fails here rather than vanishing on the wire. What must survive is
what readers and restores read: the fleet merge of decoded values equals the merge of the
originals, and an aggregator restored from decoded values publishes what the original does.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import events as ce
from consumers.aggregator import Aggregator
from consumers.costs.aggregate import CostsAggregator, CostsConfig
from consumers.dedupe import DedupeConfig
from consumers.health.aggregate import HealthAggregator
from consumers.partition import BatchStats, InputRecord, PartitionProcessor, RestoredPartition
from consumers.quality.aggregate import QualityAggregator
from router_contract import snapshot_records as sr
from router_contract._gen.router.v1 import snapshots_pb2
from router_contract.readers.costs import fleet_totals
from router_contract.readers.health import fleet_health
from router_contract.readers.quality import fleet_quality
from router_contract.snapshot_keys import record_key
from tests.consumers.helpers import consumer_event

T0 = 1_795_046_400.0  # a multiple of every slot and window size
ENCODINGS = sr.SNAPSHOT_ENCODINGS


def _run(aggregator: Aggregator, bodies: list[tuple[ce.Body, str]], partition: int = 0) -> PartitionProcessor:
    processor = PartitionProcessor("llmrouter.events.v1", partition, aggregator, DedupeConfig())
    records = [
        InputRecord(
            offset,
            int(T0 * 1000),
            f"e{offset}",
            consumer_event(
                body, event_id=f"e{offset}", request_id=rid, time_s=T0 + offset / 10, tags={"feature": "chat"}
            ),
        )
        for offset, (body, rid) in enumerate(bodies)
    ]
    processor.process(records, BatchStats())
    processor.end_offset = len(records) + 7  # 7 records the consumer has not read yet
    return processor


def _health_bodies() -> list[tuple[ce.Body, str]]:
    ok = [
        (ce.Attempt("openai", "gpt-4o", "success", latency_ms=180 + i, ttft_ms=40 + i), f"r{i}")
        for i in range(12)
    ]
    bad = [
        (ce.Attempt("openai", "gpt-4o", "error", "rate_limited", latency_ms=3), "x1"),
        (ce.Attempt("openai", "gpt-4o", "error", "timeout", latency_ms=3000), "x2"),
        (ce.Attempt("anthropic", "claude", "cancelled", "cancelled", latency_ms=9), "x3"),
        (ce.Attempt("anthropic", "claude", "success", latency_ms=0), "x4"),
    ]
    return ok + bad


def _cost_bodies() -> list[tuple[ce.Body, str]]:
    return [
        (
            ce.Completion(
                "openai",
                "gpt-4o",
                1200,
                300,
                100,
                cost_nanos_usd=987_654_321_123,
                cost_saved_nanos_usd=5,
                cache_hit=True,
            ),
            "r1",
        ),
        (ce.Completion("anthropic", "claude", 10, 20, 0, cost_nanos_usd=42), "r2"),
        (
            ce.Attempt(
                "openai",
                "gpt-4o",
                "success",
                latency_ms=5,
                unused_input_tokens=3,
                unused_output_tokens=4,
                unused_cost_nanos_usd=77,
            ),
            "r1",
        ),
    ]


def _quality_bodies() -> list[tuple[ce.Body, str]]:
    out: list[tuple[ce.Body, str]] = []
    for i in range(6):
        out += [
            (ce.Decision("code", "p/m1"), f"q{i}"),
            (ce.Completion("p", "m1"), f"q{i}"),
            (ce.Feedback(0.1 * i), f"q{i}"),
        ]
    return out


CASES = {
    "health": (HealthAggregator, _health_bodies),
    "costs": (
        # A zone's calendar windows too: their names carry the zone through both encodings.
        lambda: CostsAggregator(
            CostsConfig(tag_dimensions=frozenset({"feature"}), time_zones=("Asia/Kolkata",))
        ),
        _cost_bodies,
    ),
    "quality": (QualityAggregator, _quality_bodies),
}


def _published(kind: str) -> tuple[PartitionProcessor, dict[str, Any]]:
    new, bodies = CASES[kind]
    processor = _run(new(), bodies())
    values = {record_key(c.key, 0): c.value for c in processor.changes(T0 + 60)}
    values[record_key("_checkpoint", 0)] = processor.checkpoint(T0 + 60)
    return processor, values


def _round_trip(value: dict[str, Any], encoding: sr.SnapshotEncoding) -> dict[str, Any]:
    return sr.decode(sr.encode(value, encoding), sr.headers(encoding))


def _carried(value: dict[str, Any], decoded: dict[str, Any]) -> dict[str, Any]:
    """The original without the summaries the wire does not carry (readers recompute them).

    Anything else missing from the decoded value is a field the schema lacks: it fails here."""
    dropped = set(value) - set(decoded)
    assert dropped <= sr.DERIVED_FIELDS[value["kind"]], f"not carried by router.v1.Snapshot: {dropped}"
    return {key: value[key] for key in decoded}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_published_value_reads_back_as_built(kind: str, encoding: sr.SnapshotEncoding) -> None:
    _, values = _published(kind)
    assert len(values) >= 2
    for value in values.values():
        decoded = _round_trip(value, encoding)
        assert decoded == _carried(value, decoded)
        assert decoded["freshness"] == value["freshness"]  # carried, not dropped


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_fleet_merge_of_decoded_values_equals_the_merge_of_the_originals(
    encoding: sr.SnapshotEncoding,
) -> None:
    for kind, merge in (("health", fleet_health), ("quality", fleet_quality)):
        _, values = _published(kind)
        assert merge({k: _round_trip(v, encoding) for k, v in values.items()}) == merge(values)
    _, values = _published("costs")
    decoded = {k: _round_trip(v, encoding) for k, v in values.items()}
    for granularity, size in (("minute", 60), ("hour", 3600), ("day", 86_400)):
        start = int(T0 // size) * size
        assert fleet_totals(decoded, granularity, start) == fleet_totals(values, granularity, start)
        assert fleet_totals(values, granularity, start)  # not vacuous


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_restore_from_decoded_values_publishes_what_the_original_does(kind: str) -> None:
    new, _ = CASES[kind]
    _, values = _published(kind)

    def restored(vals: dict[str, Any]) -> PartitionProcessor:
        checkpoint = vals[record_key("_checkpoint", 0)]
        dims = [(k.rpartition("#")[0], v) for k, v in vals.items() if not k.startswith("_checkpoint")]
        processor = PartitionProcessor("llmrouter.events.v1", 0, new(), DedupeConfig())
        processor.restore(RestoredPartition(checkpoint, dims))
        for key, _value in dims:
            processor.aggregator.mark_dirty([key])
        return processor

    original = restored(values)
    decoded = restored({k: _round_trip(v, "protobuf") for k, v in values.items()})
    assert decoded.next_offset == original.next_offset and decoded.seek_offset() == original.seek_offset()
    strip = lambda changes: {c.key: c.value for c in changes}  # noqa: E731
    assert strip(decoded.changes(T0 + 90)) == strip(original.changes(T0 + 90))


def test_freshness_says_catching_up_replaying_and_live() -> None:
    processor, values = _published("costs")
    assert values[record_key("_checkpoint", 0)]["freshness"]["lag_count"] == 7
    assert processor.freshness(T0 + 20)["phase"] == sr.PHASE_LIVE  # behind, but by seconds
    assert processor.freshness(T0 + 3600)["phase"] == sr.PHASE_CATCHING_UP  # behind by an hour
    processor.end_offset = processor.next_offset
    assert processor.freshness(T0 + 3600)["phase"] == sr.PHASE_LIVE  # idle: nothing unread

    restored = PartitionProcessor("llmrouter.events.v1", 0, CostsAggregator(), DedupeConfig())
    restored.restore(RestoredPartition(values[record_key("_checkpoint", 0)], ()))
    assert restored.freshness(T0 + 60)["phase"] == sr.PHASE_REPLAYING  # re-reading counted records
    last = restored.next_offset - 1
    restored.process([InputRecord(last, int(T0 * 1000), "e-last", None)], BatchStats())
    assert restored.freshness(T0 + 60)["phase"] == sr.PHASE_LIVE


def test_the_wire_spells_enums_times_and_money_like_the_events() -> None:
    _, values = _published("health")
    value = values[record_key("openai/gpt-4o", 0)]
    wire = json.loads(sr.encode(value, "json"))
    # Published a minute after its newest event with 7 records unread: catching up.
    assert wire["schemaVersion"] == 1 and wire["freshness"]["phase"] == "SNAPSHOT_PHASE_CATCHING_UP"
    assert wire["freshness"]["lagCount"] == "7"
    errors = wire["deploymentHealth"]["slots"][0]["errors"]
    assert {e["errorClass"] for e in errors} == {"ERROR_CLASS_RATE_LIMITED", "ERROR_CLASS_TIMEOUT"}
    assert wire["deploymentHealth"]["slotDurationMs"] == "30000"  # int64: a JSON string
    assert wire["generateTime"].endswith("Z")
    _, costs = _published("costs")
    total = json.loads(sr.encode(costs[record_key("total=all", 0)], "json"))
    assert total["cost"]["granularities"][0]["windows"][0]["totals"]["costNanosUsd"] == "987654321242"


def test_records_from_before_the_schema_still_read() -> None:
    legacy = {"kind": "checkpoint", "source": {"topic": "t", "partition": 0, "offset": 3}}
    assert sr.decode(json.dumps(legacy).encode(), [("content-type", b"application/json")]) == legacy


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        (b"\xff\x00garbage", [("content-type", b"application/protobuf")]),
        (b"[1, 2]", [("content-type", b"application/json")]),
        (b"{}", [("content-type", b"text/plain")]),
        (b'{"schemaVersion": "x"}', sr.headers("json")),
        (snapshots_pb2.Snapshot(schema_version=2).SerializeToString(), sr.headers("protobuf")),
        (snapshots_pb2.Snapshot(schema_version=1).SerializeToString(), sr.headers("protobuf")),  # no body
    ],
)
def test_what_is_not_a_snapshot_of_this_version_is_a_decode_error(
    value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    with pytest.raises(sr.SnapshotDecodeError):
        sr.decode(value, headers)


_attempts = st.lists(
    st.tuples(
        st.sampled_from(["success", "error", "cancelled"]),
        st.sampled_from(["rate_limited", "overloaded", "timeout", "connection", "auth", "bad_response"]),
        st.integers(0, 120_000),
        st.none() | st.integers(0, 60_000),
        st.integers(0, 299),  # offset into the window, seconds
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(_attempts)
def test_any_health_value_survives_both_encodings(
    attempts: list[tuple[str, str, int, int | None, int]],
) -> None:
    aggregator = HealthAggregator()
    for offset, (outcome, error_class, latency, ttft, at) in enumerate(attempts):
        body = ce.Attempt(
            "p",
            "m",
            outcome,
            error_class if outcome != "success" else "unspecified",
            latency_ms=latency,
            ttft_ms=ttft,
        )
        aggregator.apply(consumer_event(body, event_id=f"e{offset}", time_s=T0 + at), offset)
    processor = PartitionProcessor("t", 0, aggregator, DedupeConfig())
    values = {record_key(c.key, 0): c.value for c in processor.changes(T0 + 300)}
    for encoding in ENCODINGS:
        decoded = {k: _round_trip(v, encoding) for k, v in values.items() if v is not None}
        assert fleet_health(decoded) == fleet_health(values)
