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
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from router_contract import snapshot_records
from router_contract.windows import rfc3339
from router_service.embedded.broker import EmbeddedBroker
from router_service.fleet.config import FleetConfig
from router_service.fleet.metrics import FleetMetrics
from router_service.fleet.subscriber import SnapshotSubscriber, quiet_partitions
from router_service.fleet.tables import costs_table
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


async def test_a_dead_broker_makes_the_view_stale_on_time(tmp_path: Path) -> None:
    # The staleness clock must run while every read hangs on a broker that does not answer. It
    # did not: the quiet-partition check waited on the dead broker's end offsets, no view was
    # built, and llmrouter_fleet_view_stale stayed 0 for the whole outage.
    views: list[FleetView] = []
    registry = CollectorRegistry()
    async with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        await _create_topics(broker)
        await _write(broker, 3, "_checkpoint#0")
        subscriber = SnapshotSubscriber(
            broker.bootstrap, CONFIG, views.append, metrics=FleetMetrics(registry)
        )
        subscriber.start()
        try:
            await _until(lambda: bool(views) and not views[-1].stale, 30)
            await broker.kill()
            # Stale once the newest record is stale_after_s (4 s) old: within that and a margin.
            await _until(lambda: views[-1].stale == frozenset(Topic), CONFIG.stale_after_s + 6)
            stale = registry.get_sample_value("llmrouter_fleet_view_stale", {"topic": Topic.HEALTH.value})
            assert stale == 1
        finally:
            await subscriber.stop()


def test_quiet_partitions_are_those_without_a_record_for_the_quiet_time() -> None:
    a, b, c = (TopicPartition("t", p) for p in range(3))
    heard = {a: 10.0, b: 17.0}
    assert quiet_partitions([a, b, c], heard, 20.0, 5.0) == [a]
    assert heard[c] == 20.0  # first seen now: quiet from now on
    assert quiet_partitions([a, b, c], heard, 24.0, 5.0) == [a, b]
    assert quiet_partitions([a, b, c], heard, 25.0, 5.0) == [a, b, c]


def _checkpoint(partition: int, phase: str, lag: int, watermark_s: float) -> bytes:
    return snapshot_records.encode(
        {
            "kind": "checkpoint",
            "source": {"topic": "llmrouter.events.v1", "partition": partition, "offset": 100},
            "generated_at": rfc3339(time.time()),
            "freshness": {"phase": phase, "lag_count": lag, "watermark_s": watermark_s},
            "replay_from": 90,
            "dedupe": {"max_timestamp_ms": 0},
            "state": {"watermark_s": watermark_s},
        }
    )


async def test_the_view_and_metrics_say_when_the_consumers_are_catching_up(
    kafka_broker: EmbeddedBroker,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = {topic: f"{name}.{suffix}" for topic, name in TOPICS.items()}
    config = FleetConfig(
        health_topic=topics[Topic.HEALTH],
        quality_topic=topics[Topic.QUALITY],
        costs_topic=topics[Topic.COSTS],
        refresh_interval_s=0.2,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in topics.values()])
    finally:
        await admin.close()
    now = time.time()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        headers = snapshot_records.headers("protobuf")
        for topic, name in topics.items():
            # Costs: input partition 1 restarted and is 5,000 records behind; the others are live.
            behind = topic is Topic.COSTS
            for partition, (phase, lag) in enumerate(
                [("live", 0), ("catching_up", 5000) if behind else ("live", 2)]
            ):
                value = _checkpoint(partition, phase, lag, now - (600 if behind and partition else 1))
                await producer.send_and_wait(
                    name, value, key=f"_checkpoint#{partition}".encode(), headers=headers
                )
    finally:
        await producer.stop()

    registry = CollectorRegistry()
    views: list[FleetView] = []
    subscriber = SnapshotSubscriber(
        kafka_broker.bootstrap, config, views.append, metrics=FleetMetrics(registry)
    )
    subscriber.start()
    try:
        await _until(lambda: bool(views) and len(views[-1].freshness) == 3, 30)
    finally:
        await subscriber.stop()
    costs, health = views[-1].freshness[Topic.COSTS], views[-1].freshness[Topic.HEALTH]
    assert costs.catching_up and costs.lag_count == 5000 and costs.partitions == 2
    assert costs.watermark_s == pytest.approx(now - 600)  # the partition furthest behind
    assert not health.catching_up and health.lag_count == 2
    gauge = registry.get_sample_value
    assert gauge("llmrouter_fleet_snapshot_catching_up", {"topic": "costs"}) == 1
    assert gauge("llmrouter_fleet_snapshot_catching_up", {"topic": "health"}) == 0
    assert gauge("llmrouter_fleet_snapshot_lag_records", {"topic": "costs"}) == 5000
    assert gauge("llmrouter_fleet_snapshot_watermark_age_seconds", {"topic": "costs"}) >= 600
    assert costs_table(views[-1], "hour", now).startswith("costs: consumers catching up (5000 input records")
