"""The fleet subscriber against the real embedded broker: it keeps following the snapshot topics.

Issue 19, item 5: a router's fleet view went stale (snapshot age 20-24 s) while the consumers
wrote every <= 6.6 s. The reader was positioned past the end of partitions whose log the broker
had lost (Tansu answers such fetches with nothing, not OFFSET_OUT_OF_RANGE), and waited until
they grew past its old position, skipping everything written meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from router_service.embedded.broker import EmbeddedBroker
from router_service.fleet.config import FleetConfig
from router_service.fleet.metrics import FleetMetrics
from router_service.fleet.subscriber import SnapshotSubscriber, quiet_partitions
from router_service.fleet.view import FleetView, Topic

pytestmark = pytest.mark.timeout(120)

TOPICS = {Topic.HEALTH: "t.fleet.health", Topic.QUALITY: "t.fleet.quality", Topic.COSTS: "t.fleet.costs"}
CONFIG = FleetConfig(
    health_topic=TOPICS[Topic.HEALTH],
    quality_topic=TOPICS[Topic.QUALITY],
    costs_topic=TOPICS[Topic.COSTS],
    stale_after_s=4.0,  # quiet partitions are checked after 2 s
    refresh_interval_s=0.2,
)


async def _create_topics(broker: EmbeddedBroker) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in TOPICS.values()])
    finally:
        await admin.close()


async def _write(broker: EmbeddedBroker, count: int, key: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for i in range(count):
            for name in TOPICS.values():
                value = json.dumps({"kind": "checkpoint", "n": i}).encode()
                await producer.send_and_wait(name, value, key=key.encode())
    finally:
        await producer.stop()


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the subscriber did not read the records in time"
        await asyncio.sleep(0.1)


async def test_after_the_broker_lost_its_log_the_reader_reads_the_new_records(tmp_path: Path) -> None:
    views: list[FleetView] = []
    async with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        await _create_topics(broker)
        await _write(broker, 30, "_checkpoint#0")
        subscriber = SnapshotSubscriber(
            broker.bootstrap, CONFIG, views.append, metrics=FleetMetrics(CollectorRegistry())
        )
        subscriber.start()
        try:
            await _until(lambda: all(subscriber.state.latest[t] for t in TOPICS), 30)
            assert not views[-1].stale

            # Memory storage: the restarted broker is empty, so the reader's position (30) is
            # past the end of every partition. The consumers go on writing.
            await broker.restart()
            await _create_topics(broker)
            await _write(broker, 3, "_checkpoint#1")

            # Read within the quiet check (2 s) plus a loaded machine's margin; before the fix
            # these records were skipped until each partition grew past offset 30.
            await _until(lambda: all("_checkpoint#1" in subscriber.state.latest[t] for t in TOPICS), 30)
            await _until(lambda: not views[-1].stale, 10)
        finally:
            await subscriber.stop()


def test_quiet_partitions_are_those_without_a_record_for_the_quiet_time() -> None:
    a, b, c = (TopicPartition("t", p) for p in range(3))
    heard = {a: 10.0, b: 17.0}
    assert quiet_partitions([a, b, c], heard, 20.0, 5.0) == [a]
    assert heard[c] == 20.0  # first seen now: quiet from now on
    assert quiet_partitions([a, b, c], heard, 24.0, 5.0) == [a, b]
    assert quiet_partitions([a, b, c], heard, 25.0, 5.0) == [a, b, c]
