"""The fleet subscriber says when its first read is done (issue 19, item 3: a cold instance).

A router holds its server back until `wait_ready` (fleet.startup_wait_s), so `ready` must mean
"every record the snapshot topics held at the start has been applied to the view handed on",
on the real embedded broker, whose end offsets are not Kafka's (the base offset of the last
batch plus one: the last batch is the one a reader stopping early would miss).
"""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from router_contract import snapshot_records
from router_contract.windows import rfc3339
from router_service.embedded.broker import EmbeddedBroker, free_port
from router_service.fleet.config import FleetConfig
from router_service.fleet.metrics import FleetMetrics
from router_service.fleet.subscriber import SnapshotSubscriber
from router_service.fleet.view import FleetView, Topic

pytestmark = pytest.mark.timeout(120)

PARTITIONS = 3
PER_PARTITION = 4000  # more than one fetch (aiokafka: 1 MiB a partition), the last batch of many records


def _config() -> FleetConfig:
    suffix = uuid.uuid4().hex[:8]
    return FleetConfig(
        health_topic=f"t.ready.health.{suffix}",
        quality_topic=f"t.ready.quality.{suffix}",
        costs_topic=f"t.ready.costs.{suffix}",
        refresh_interval_s=0.2,
    )


def _names(config: FleetConfig) -> list[str]:
    return [config.health_topic, config.quality_topic, config.costs_topic]


def _checkpoint(partition: int, offset: int) -> bytes:
    return snapshot_records.encode(
        {
            "kind": "checkpoint",
            "source": {"topic": "llmrouter.events.v1", "partition": partition, "offset": offset},
            "generated_at": rfc3339(time.time()),
            "freshness": {"phase": "live", "lag_count": 0, "watermark_s": time.time()},
            "replay_from": offset,
            "dedupe": {"max_timestamp_ms": 0},
            "state": {"watermark_s": time.time()},
        }
    )


async def _fill(broker: EmbeddedBroker, config: FleetConfig) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in _names(config)])
    finally:
        await admin.close()
    # Sent without waiting, with a linger: the broker stores multi-record batches.
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False, linger_ms=20)
    await producer.start()
    try:
        headers = snapshot_records.headers("protobuf")
        for name in _names(config):
            for partition in range(PARTITIONS):
                for offset in range(PER_PARTITION):
                    await producer.send(
                        name,
                        _checkpoint(partition, offset),
                        key=f"_checkpoint#{partition}".encode(),
                        partition=partition,
                        headers=headers,
                    )
        await producer.flush()
    finally:
        await producer.stop()


async def test_ready_once_every_record_there_at_the_start_is_in_the_view_handed_on(
    kafka_broker: EmbeddedBroker,
) -> None:
    config = _config()
    await _fill(kafka_broker, config)
    registry = CollectorRegistry()
    views: list[tuple[FleetView, float]] = []  # each view with the records read when it was built

    def records_read() -> float:
        return sum(
            registry.get_sample_value("llmrouter_fleet_snapshot_records_total", {"topic": t.value}) or 0.0
            for t in Topic
        )

    subscriber = SnapshotSubscriber(
        kafka_broker.bootstrap,
        config,
        lambda view: views.append((view, records_read())),
        metrics=FleetMetrics(registry),
    )
    subscriber.start()
    try:
        assert not subscriber.ready
        assert registry.get_sample_value("llmrouter_fleet_view_ready") == 0
        assert await subscriber.wait_ready(60)
        total = 3 * PARTITIONS * PER_PARTITION
        assert records_read() == total
        view, read_then = views[-1]
        assert read_then == total  # the view handed on before `ready` holds them all
        for topic in Topic:  # the newest checkpoint of every input partition
            assert view.freshness[topic].partitions == PARTITIONS
        assert registry.get_sample_value("llmrouter_fleet_view_ready") == 1
        assert await subscriber.wait_ready(0)  # stays ready
    finally:
        await subscriber.stop()


async def test_topics_that_do_not_exist_yet_hold_nothing_to_wait_for(kafka_broker: EmbeddedBroker) -> None:
    subscriber = SnapshotSubscriber(
        kafka_broker.bootstrap, _config(), lambda view: None, metrics=FleetMetrics(CollectorRegistry())
    )
    subscriber.start()
    try:
        assert await subscriber.wait_ready(30)
    finally:
        await subscriber.stop()


async def test_an_unreachable_broker_is_never_ready_and_the_wait_ends() -> None:
    registry = CollectorRegistry()
    subscriber = SnapshotSubscriber(
        f"127.0.0.1:{free_port()}", _config(), lambda view: None, metrics=FleetMetrics(registry)
    )
    subscriber.start()
    try:
        assert not await subscriber.wait_ready(1.0)
        assert not subscriber.ready
        assert registry.get_sample_value("llmrouter_fleet_view_ready") == 0
    finally:
        await subscriber.stop()
