"""A consumer's snapshot topic read back from the broker as one {record key: value} dict: what the
drills compare their callers' own counts with (the costs rollups, fleet-wide)."""

from __future__ import annotations

from typing import Any

from consumers.kafka import KafkaOptions
from consumers.snapshot_store import SnapshotReader
from router_contract.snapshot_keys import record_key


async def read_partitions(bootstrap: str, topic: str, partitions: int) -> dict[int, Any]:
    """Each partition's state as a restarted consumer would restore it (checkpoint, dimensions)."""
    reader = SnapshotReader(KafkaOptions(bootstrap, enable_idempotence=False), topic)
    await reader.start()
    try:
        return dict(await reader.read(range(partitions), partitions))
    finally:
        await reader.stop()


async def read_snapshot_topic(bootstrap: str, topic: str, partitions: int) -> dict[str, Any]:
    restored = await read_partitions(bootstrap, topic, partitions)
    return {record_key(key, p): value for p, r in restored.items() for key, value in r.dimensions}
