"""What leaves the process: caller tags and content as they reach the real broker and the disk
spool, with and without the write-ahead log (`durable`). Content is off, as by default: tags
are still redacted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from router_service.embedded.broker import EmbeddedBroker, free_port
from router_service.telemetry import events as ev
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.publisher import KafkaPublisher
from tests.telemetry import helpers as h

SECRETS = ("tok-abcdefgh12345678", "jane.doe@example.com", "AbCdEf0123456789xyzXYZ", "4111 1111 1111 1111")
TAGS = {
    "note": f"Bearer {SECRETS[0]}",
    "contact": SECRETS[1],
    f"sk-proj-{SECRETS[2]}": "a key as a tag key",
    "card": SECRETS[3],
    "feature": "summarise",
}


def _leaky_events() -> list[ev.TelemetryEvent]:
    context = h.context("req-leaky", tags=TAGS)
    bodies = [*h.bodies().values(), ev.FeedbackEvent(0.9, TAGS)]
    return [ev.TelemetryEvent.create(context, body, now_unix_s=h.NOW) for body in bodies]


async def _values(bootstrap: str, topic: str, count: int, timeout_s: float = 15.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(values) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                values += [record.value for record in records]
    finally:
        await consumer.stop()
    return values


def _assert_scrubbed(data: bytes) -> None:
    for secret in SECRETS:
        assert secret.encode() not in data
    assert b"[REDACTED]" in data
    assert b"summarise" in data  # an ordinary tag survives


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
@pytest.mark.parametrize("durable", [True, False])
async def test_tags_reach_kafka_redacted(
    kafka_broker: EmbeddedBroker, tmp_path: Path, durable: bool, encoding: str
) -> None:
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 1})
    publisher = KafkaPublisher(
        h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), encoding=encoding, durable=durable)
    )
    await publisher.start()
    sent = _leaky_events()

    for event in sent:
        publisher.publish(event)
    await publisher.stop()

    values = await _values(kafka_broker.bootstrap, topic, len(sent))
    assert len(values) == len(sent)
    for value in values:
        _assert_scrubbed(value)


async def test_tags_reach_the_spool_redacted(tmp_path: Path) -> None:
    unreachable = f"127.0.0.1:{free_port()}"
    metrics = h.Metrics()
    publisher = KafkaPublisher(h.publisher_config(unreachable, "t", str(tmp_path)), metrics=metrics)
    await publisher.start()
    sent = _leaky_events()

    for event in sent:
        publisher.publish(event)
    await publisher.stop(timeout=2.0)

    assert metrics.value("llmrouter_events_spooled_total") == len(sent)
    _assert_scrubbed(_spooled_bytes(tmp_path))


def _spooled_bytes(directory: Path) -> bytes:
    segments = sorted(directory.glob("*.seg"))
    assert segments
    return b"".join(path.read_bytes() for path in segments)
