"""Publishes snapshot records to a job's snapshot topic and waits until the broker has them.

Snapshot values go out as `router.v1.Snapshot` (router_contract/snapshot_records.py), in
protobuf binary by default or in its proto3 JSON mapping (`--snapshot-encoding json`, for kcat
and jq), with `content-type` and `ce_dataschema` headers. A sink without an encoding (the dedupe
log's) writes compact UTF-8 JSON (`content-type: application/json`). A None value is a tombstone.
All records of one input partition go to one output partition (snapshot_keys.py), in order, so
a flush's dimension records always precede its checkpoint record.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from consumers.aggregator import JsonDict
from consumers.kafka import KafkaOptions, topic_partitions
from router_contract import snapshot_records
from router_contract.snapshot_keys import output_partition

_HEADERS = [("content-type", b"application/json")]
# How long a flush may wait for its acks; then it fails, nothing is committed, and the next
# flush publishes the same dimensions again. Processing waits meanwhile (the flush holds the lock).
PUBLISH_TIMEOUT_S = 30.0
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class SinkError(Exception):
    """The snapshot records were not all acknowledged; nothing may be committed."""


@dataclass(frozen=True, slots=True)
class OutRecord:
    key: str
    value: JsonDict | None
    input_partition: int


class SnapshotSink:
    def __init__(
        self,
        options: KafkaOptions,
        topic: str,
        client_id: str,
        *,
        encoding: snapshot_records.SnapshotEncoding | None = None,
    ) -> None:
        self._options = options
        self._encoding = encoding
        self._headers = _HEADERS if encoding is None else snapshot_records.headers(encoding)
        self._topic = topic
        self._client_id = client_id
        self._producer: Any = None
        self.partitions = 0

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=self._options.enable_idempotence,
            linger_ms=5,
            compression_type="gzip",  # snapshots repeat field names; gzip needs no extra package
            client_id=self._client_id,
            **self._options.client_kwargs(),
        )
        await producer.start()
        self._producer = producer

    async def load_partitions(self) -> None:
        """Learn the snapshot topic's partition count; TopicMissingError when it does not exist."""
        self.partitions = await topic_partitions(self.client, self._topic)

    @property
    def client(self) -> Any:
        """The producer's cluster client (metadata lookups)."""
        if self._producer is None:
            raise SinkError("sink is not started")
        return self._producer.client

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, records: Sequence[OutRecord]) -> None:
        """Send every record and wait for every acknowledgement; SinkError if any failed."""
        if self._producer is None:
            raise SinkError("sink is not started")
        try:
            futures = [await self._send(record) for record in records]
            await asyncio.wait_for(asyncio.gather(*futures), timeout=PUBLISH_TIMEOUT_S)
        except (KafkaError, TimeoutError) as exc:
            raise SinkError(f"publishing {len(records)} snapshot records failed: {exc!r}") from exc

    async def _send(self, record: OutRecord) -> asyncio.Future[Any]:
        value = None if record.value is None else self._encode(record.value)
        future: asyncio.Future[Any] = await self._producer.send(
            self._topic,
            value=value,
            key=record.key.encode(),
            partition=output_partition(record.input_partition, self.partitions),
            headers=self._headers,
        )
        return future

    def _encode(self, value: JsonDict) -> bytes:
        if self._encoding is None:
            return _JSON.encode(value).encode()
        return snapshot_records.encode(value, self._encoding)
