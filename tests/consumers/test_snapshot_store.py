"""SnapshotReader on the real broker (Tansu): reading to the end without a drain poll, and the
prefetch a restart overlaps with its group join, topped up at the read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from consumers.kafka import ensure_topic
from consumers.partition import RestoredPartition
from consumers.sink import OutRecord, SnapshotSink
from consumers.snapshot_store import SnapshotReader
from router_contract.snapshot_keys import CHECKPOINT_KEY, record_key
from router_service.embedded.broker import EmbeddedBroker
from tests.consumers import helpers

PARTITIONS = 2


@pytest.fixture
async def topic(kafka_broker: EmbeddedBroker) -> AsyncIterator[tuple[str, SnapshotSink]]:
    name = helpers.unique("snapshots")
    options = helpers.options(kafka_broker.bootstrap)
    await ensure_topic(options, name, PARTITIONS, compacted=True)
    sink = SnapshotSink(options, name, "test-snapshot-store")
    await sink.start()
    await sink.load_partitions()
    yield name, sink
    await sink.stop()


async def _write_rounds(sink: SnapshotSink, rounds: range) -> None:
    """Keys k0-k4 of both partitions, one acknowledged publish (one batch or more) per round."""
    for round_ in rounds:
        await sink.publish(
            [
                OutRecord(record_key(f"k{i}", p), {"round": round_}, p)
                for p in range(PARTITIONS)
                for i in range(5)
            ]
        )


def _values(restored: RestoredPartition) -> dict[str, int]:
    return {key: value["round"] for key, value in restored.dimensions}


async def test_a_read_sees_the_newest_value_of_every_key_down_to_the_last_batch(
    kafka_broker: EmbeddedBroker, topic: tuple[str, SnapshotSink]
) -> None:
    name, sink = topic
    await _write_rounds(sink, range(3))
    await sink.publish(
        [OutRecord(record_key("k1", 0), None, 0), OutRecord(record_key(CHECKPOINT_KEY, 0), {"round": 2}, 0)]
    )
    reader = SnapshotReader(helpers.options(kafka_broker.bootstrap), name, timeout_s=20)
    await reader.start()
    try:
        restored = await reader.read([0, 1], PARTITIONS)
        again = await reader.read([1], PARTITIONS)  # a second read starts over from the beginning
    finally:
        await reader.stop()
    assert _values(restored[0]) == {"k0": 2, "k2": 2, "k3": 2, "k4": 2}  # k1's tombstone is the newest
    assert restored[0].checkpoint == {"round": 2}
    assert _values(restored[1]) == {f"k{i}": 2 for i in range(5)} and restored[1].checkpoint is None
    assert again == {1: restored[1]}


async def test_the_first_read_after_a_prefetch_includes_what_was_written_after_it(
    kafka_broker: EmbeddedBroker, topic: tuple[str, SnapshotSink]
) -> None:
    name, sink = topic
    await _write_rounds(sink, range(2))
    reader = SnapshotReader(helpers.options(kafka_broker.bootstrap), name, timeout_s=20)
    await reader.start()
    try:
        await asyncio.wait_for(reader.prefetch(PARTITIONS), 20)  # read to its end: the read only tops up
        # What a previous owner flushes between the prefetch and the assignment (its revoke flush).
        await _write_rounds(sink, range(2, 3))
        await sink.publish([OutRecord(record_key("new", 1), {"round": 9}, 1)])
        restored = await reader.read([1], PARTITIONS)
    finally:
        await reader.stop()
    assert list(restored) == [1]
    assert _values(restored[1]) == {**{f"k{i}": 2 for i in range(5)}, "new": 9}


async def test_an_empty_topic_reads_back_as_no_state(
    kafka_broker: EmbeddedBroker, topic: tuple[str, SnapshotSink]
) -> None:
    name, _ = topic
    reader = SnapshotReader(helpers.options(kafka_broker.bootstrap), name, timeout_s=20)
    await reader.start()
    try:
        reader.prefetch(PARTITIONS)
        assert await reader.read([0, 1], PARTITIONS) == {0: RestoredPartition(), 1: RestoredPartition()}
    finally:
        await reader.stop()
