"""record_batches: records into aiokafka batches, partitioned as aiokafka's default partitioner."""

from __future__ import annotations

import random

import pytest
from aiokafka import AIOKafkaProducer, partitioner

from router_service.telemetry.record_batches import _fill_batches, partition_index
from router_service.telemetry.spool import SpoolRecord


@pytest.mark.parametrize("partition_count", [1, 3, 4, 12])
def test_partition_matches_aiokafkas_default_partitioner(partition_count: int) -> None:
    rng = random.Random(partition_count)
    # Every length up to 80 (murmur2 takes 4-byte words, then a 0-3 byte tail), then random ones.
    keys = [rng.randbytes(length) for length in range(80)] + [b"req-1", "ünï✓".encode(), rng.randbytes(1000)]
    keys += [rng.randbytes(rng.randrange(0, 60)) for _ in range(500)]
    partitions = list(range(partition_count))

    for key in keys:
        expected = partitioner.DefaultPartitioner()(key, partitions, partitions)
        assert partitions[partition_index(key, partition_count)] == expected


async def test_batches_fill_up_in_order_and_are_closed() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=2048)  # never started
    records = [SpoolRecord("t", b"req-1", bytes([i]) * 500, (("ce_id", str(i).encode()),)) for i in range(10)]
    try:
        filled = _fill_batches(producer, records)
    finally:
        await producer.stop()

    assert len(filled) > 1  # 10 x 500 bytes do not fit one 2 KiB batch
    assert [record for batch_records, _ in filled for record in batch_records] == records
    for batch_records, batch in filled:
        assert batch.closed() and batch.record_count() == len(batch_records)


async def test_a_record_bigger_than_a_batch_gets_a_batch_of_its_own() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=1024)
    records = [SpoolRecord("t", b"k", b"a" * 100), SpoolRecord("t", b"k", b"b" * 5000)]
    try:
        filled = _fill_batches(producer, records)
    finally:
        await producer.stop()

    assert [batch_records for batch_records, _ in filled] == [[records[0]], [records[1]]]
