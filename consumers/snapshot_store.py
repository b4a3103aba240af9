"""Reads a job's snapshot topic back: the state of the input partitions it is about to take on.

For each wanted input partition, the newest value of each of its keys (what a compacted topic
keeps; on an uncompacted topic the reader simply sees older values first), split into the
checkpoint record and the dimension records. Reads only the output partitions those input
partitions map to, from their beginning to the end offset seen when the read starts: everything
a previous owner flushed (and had acknowledged) before the rebalance is included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.aggregator import JsonDict
from consumers.kafka import KafkaOptions
from consumers.partition import RestoredPartition
from router_contract import snapshot_records
from router_contract.snapshot_keys import CHECKPOINT_KEY, output_partition, parse_record_key

log = logging.getLogger(__name__)
_DRAIN_MS = 200


class RestoreError(Exception):
    """The snapshot topic could not be read to its end in time; the partitions must not be processed."""


class SnapshotReader:
    def __init__(self, options: KafkaOptions, topic: str, *, timeout_s: float = 60.0) -> None:
        self._options = options
        self._topic = topic
        self._timeout_s = timeout_s
        self._consumer: Any = None

    async def start(self) -> None:
        # No group: this consumer assigns partitions by hand and never commits.
        self._consumer = AIOKafkaConsumer(
            group_id=None, enable_auto_commit=False, **self._options.client_kwargs()
        )
        await self._consumer.start()

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def read(self, partitions: Collection[int], output_partitions: int) -> dict[int, RestoredPartition]:
        """{input partition: what its previous owners published} for every partition asked for."""
        wanted = set(partitions)
        latest: dict[int, dict[str, JsonDict | None]] = {partition: {} for partition in wanted}
        tps = sorted(
            {TopicPartition(self._topic, output_partition(p, output_partitions)) for p in wanted},
            key=lambda tp: tp.partition,
        )
        if tps:
            await self._read_to_end(tps, wanted, latest)
        return {partition: _restored(values) for partition, values in latest.items()}

    async def _read_to_end(
        self, tps: list[TopicPartition], wanted: set[int], latest: dict[int, dict[str, JsonDict | None]]
    ) -> None:
        consumer = self._consumer
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, begin[tp])
        deadline = time.monotonic() + self._timeout_s
        while True:
            if time.monotonic() > deadline:
                raise RestoreError(f"reading {self._topic} back took longer than {self._timeout_s}s")
            # Past the end offsets the broker reported, poll once more and stop when nothing comes:
            # Tansu 0.6 reports the base offset of a partition's last batch as its end offset.
            draining = await _past(consumer, end)
            batches = await consumer.getmany(*tps, timeout_ms=_DRAIN_MS if draining else 500)
            for messages in batches.values():
                for message in messages:
                    _keep(message, wanted, latest)
            if draining and not batches:
                return


async def _past(consumer: Any, end: dict[Any, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return False
    return True


def _keep(message: Any, wanted: set[int], latest: dict[int, dict[str, JsonDict | None]]) -> None:
    try:
        key, partition = parse_record_key(message.key.decode())
        value = None if message.value is None else snapshot_records.decode(message.value, message.headers)
    except (AttributeError, UnicodeDecodeError, ValueError):  # SnapshotDecodeError is a ValueError
        log.warning("skipping a record this consumer cannot have written at offset %s", message.offset)
        return
    if partition in wanted:
        latest[partition][key] = value


def _restored(values: dict[str, JsonDict | None]) -> RestoredPartition:
    checkpoint = values.pop(CHECKPOINT_KEY, None)
    dimensions = [(key, value) for key, value in values.items() if value is not None]
    return RestoredPartition(checkpoint=checkpoint, dimensions=tuple(dimensions))
