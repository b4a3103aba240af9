"""Reads a job's snapshot topic back: the state of the input partitions it is about to take on.

For each wanted input partition, the newest value of each of its keys (what a compacted topic
keeps; on an uncompacted topic the reader simply sees older values first), split into the
checkpoint record and the dimension records. Reads only the output partitions those input
partitions map to, from their beginning to their end: everything a previous owner flushed (and
had acknowledged) before the rebalance is included.

- The end: the end offsets asked when the read starts (or tops up, below) and the high watermark
  the fetch responses carry. Kafka's end offset is the high watermark; Tansu 0.6 reports the
  last batch's base offset + 1 instead. A partition is read once its position has reached both:
  the end offset proves the read got into the last batch acknowledged before it began, the high
  watermark that it has all of that batch (fetches return whole batches). Nothing waits for
  "no more records come" (the drain poll this replaced cost ~200 ms a read, and could cut a read
  short on a loaded machine).
- Prefetch: `prefetch()` reads every partition of the topic in the background; the runner
  starts it before it joins its group, so the read overlaps the join (Tansu holds a join ~1 s; a
  restart after a crash takes every partition back). The first `read` then only tops up: from
  where the prefetch got to, up to end offsets asked at that moment, so it still sees every
  record acknowledged before the assignment. Later reads (rebalances) start from the beginning.
- Values are kept as read and decoded only at the end, for the partitions asked for and only the
  newest value of each key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Coroutine, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.aggregator import JsonDict
from consumers.kafka import KafkaOptions
from consumers.partition import RestoredPartition
from router_contract import snapshot_records
from router_contract.snapshot_keys import CHECKPOINT_KEY, output_partition, parse_record_key

log = logging.getLogger(__name__)
# A fetch with nothing to return waits this long at the broker: how soon an empty partition's
# high watermark is known. Readers fetch only while they read (they pause after).
_FETCH_WAIT_MS = 50
_POLL_MS = 100


class RestoreError(Exception):
    """The snapshot topic could not be read to its end in time; the partitions must not be processed."""


class _Value(NamedTuple):
    """A record's value as read, decoded only if it is still the newest of its key at the end."""

    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    offset: int


# {input partition: {key: newest value read}}
_Latest = dict[int, dict[str, _Value]]


class SnapshotReader:
    def __init__(self, options: KafkaOptions, topic: str, *, timeout_s: float = 60.0) -> None:
        self._options = options
        self._topic = topic
        self._timeout_s = timeout_s
        self._consumer: Any = None
        self._prefetch: asyncio.Task[_Latest] | None = None

    async def start(self) -> None:
        # No group: this consumer assigns partitions by hand and never commits.
        self._consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=_FETCH_WAIT_MS,
            **self._options.client_kwargs(),
        )
        await self._consumer.start()

    async def stop(self) -> None:
        await self._drop_prefetch()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    def prefetch(self, output_partitions: int) -> asyncio.Future[None]:
        """Start reading every output partition in the background; the next `read` tops it up.

        The future is done when the prefetch is, whatever its outcome (a failed one only makes
        `read` start over); a caller may wait for it, the runner does not."""
        tps = [TopicPartition(self._topic, p) for p in range(output_partitions)]
        reading = self._within_timeout(self._read_all(tps, None))
        task = asyncio.create_task(reading, name=f"prefetch-{self._topic}")
        self._prefetch = task
        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task.add_done_callback(lambda _: None if finished.done() else finished.set_result(None))
        return finished

    async def read(self, partitions: Collection[int], output_partitions: int) -> dict[int, RestoredPartition]:
        """{input partition: what its previous owners published} for every partition asked for."""
        wanted = set(partitions)
        tps = sorted(
            {TopicPartition(self._topic, output_partition(p, output_partitions)) for p in wanted},
            key=lambda tp: tp.partition,
        )
        latest: _Latest = {}
        if tps:
            try:
                latest = await self._within_timeout(self._read(tps, wanted))
            finally:
                # No fetching in the background between reads. (Not unsubscribe(): aiokafka 0.14's
                # stop() then hung now and then, its fetcher waiting for an assignment.)
                self._consumer.pause(*self._consumer.assignment())
        return {partition: _restored(latest.get(partition, {})) for partition in wanted}

    async def _within_timeout(self, reading: Coroutine[Any, Any, _Latest]) -> _Latest:
        # Around every await of a read: aiokafka's position() waits as long as a partition has
        # no valid position, and nothing else would stop a read that cannot end.
        try:
            async with asyncio.timeout(self._timeout_s):
                return await reading
        except TimeoutError:
            raise RestoreError(f"reading {self._topic} back took longer than {self._timeout_s}s") from None

    async def _read(self, tps: list[TopicPartition], wanted: set[int]) -> _Latest:
        prefetched = await self._take_prefetch()
        if prefetched is not None and set(tps) <= self._consumer.assignment():
            return await self._read_to_end(self._consumer.assignment(), prefetched, None)
        return await self._read_all(tps, wanted)

    async def _take_prefetch(self) -> _Latest | None:
        task, self._prefetch = self._prefetch, None
        if task is None:
            return None
        try:
            return await task
        except Exception:  # the read starts over; it fails the same way if the broker does
            log.warning("prefetching %s failed; reading it from the beginning", self._topic, exc_info=True)
            return None

    async def _drop_prefetch(self) -> None:
        task, self._prefetch = self._prefetch, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _read_all(self, tps: list[TopicPartition], wanted: set[int] | None) -> _Latest:
        consumer = self._consumer
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, begin[tp])
        return await self._read_to_end(set(tps), {}, wanted)

    async def _read_to_end(
        self, tps: Collection[TopicPartition], latest: _Latest, wanted: set[int] | None
    ) -> _Latest:
        """Read on from the current positions to the end (module docstring); wanted None: keep all."""
        consumer = self._consumer
        end = await consumer.end_offsets(list(tps))
        while not await _reached(consumer, end):
            batches = await consumer.getmany(*tps, timeout_ms=_POLL_MS)
            for messages in batches.values():
                for message in messages:
                    _keep(message, wanted, latest)
        return latest


async def _reached(consumer: Any, end: dict[Any, int]) -> bool:
    for tp, offset in end.items():
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < max(offset, highwater):
            return False
    return True


def _keep(message: Any, wanted: set[int] | None, latest: _Latest) -> None:
    try:
        key, partition = parse_record_key(message.key.decode())
    except (AttributeError, UnicodeDecodeError, ValueError):
        log.warning("skipping a record this consumer cannot have written at offset %s", message.offset)
        return
    if wanted is None or partition in wanted:
        latest.setdefault(partition, {})[key] = _Value(message.value, message.headers, message.offset)


def _decoded(value: _Value) -> JsonDict | None:
    """The value, None for a tombstone; ValueError for one this consumer cannot have written."""
    return None if value.value is None else snapshot_records.decode(value.value, value.headers)


def _restored(raw: dict[str, _Value]) -> RestoredPartition:
    values: dict[str, JsonDict | None] = {}
    for key, value in raw.items():
        try:
            values[key] = _decoded(value)
        except ValueError:  # SnapshotDecodeError is a ValueError
            log.warning("skipping a record this consumer cannot have written at offset %s", value.offset)
    checkpoint = values.pop(CHECKPOINT_KEY, None)
    dimensions = [(key, value) for key, value in values.items() if value is not None]
    return RestoredPartition(checkpoint=checkpoint, dimensions=tuple(dimensions))
