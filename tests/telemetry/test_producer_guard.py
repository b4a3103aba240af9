"""ProducerGuard: a producer that lost a connection fails what it holds and sends nothing more."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.conn import CloseReason
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.structs import TopicPartition

from router_service.embedded.broker import EmbeddedBroker, free_port
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.producer_guard import ProducerGuard, ProducerRetiredError
from router_service.telemetry.publisher import KafkaPublisher
from tests.telemetry import helpers as h

PRODUCE = ProduceRequest(transactional_id=None, required_acks=-1, timeout=1000, topics=[])


class Harness:
    """An unstarted producer whose client "sends" through a stub, with a guard installed on it."""

    def __init__(self) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{free_port()}")
        self.sent: list[Any] = []
        self.send_error: Exception | None = None
        self.closes: list[CloseReason | None] = []
        self.producer.client.send = self._stub_send
        self.producer.client._on_connection_closed = lambda conn, reason: self.closes.append(reason)
        self.wakeups = 0
        self.guard = ProducerGuard(self.producer, self._on_lost)

    def _on_lost(self) -> None:
        self.wakeups += 1

    async def _stub_send(self, node_id: Any, request: Any, **kwargs: Any) -> str:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(request)
        return "response"

    async def pending(self) -> asyncio.Future[Any]:
        """A record waiting in the producer's accumulator, as while its broker is unreachable."""
        accumulator = self.producer._message_accumulator
        return await accumulator.add_message(TopicPartition("t", 0), b"k", b"v", timeout=1.0)  # type: ignore[no-any-return]

    def close_connection(self, reason: CloseReason | None) -> None:
        self.producer.client._on_connection_closed(object(), reason)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.producer.stop()


@pytest.mark.parametrize(
    "reason", [CloseReason.CONNECTION_BROKEN, CloseReason.CONNECTION_TIMEOUT, CloseReason.IDLE_DROP, None]
)
async def test_a_lost_connection_fails_held_batches_and_fences_the_producer(
    harness: Harness, reason: CloseReason | None
) -> None:
    record = await harness.pending()

    harness.close_connection(reason)

    assert harness.guard.lost and harness.wakeups == 1
    assert harness.closes == [reason]  # aiokafka's own callback still runs
    with pytest.raises(KafkaConnectionError, match="lost the connection"):
        await record
    with pytest.raises(ProducerRetiredError) as refused:  # never resent, whatever answers now
        await harness.producer.client.send(0, PRODUCE)
    assert not refused.value.retriable  # so aiokafka fails the batch instead of retrying it
    assert harness.sent == []
    assert await harness.producer.client.send(0, MetadataRequest([])) == "response"  # only produce is fenced


async def test_our_own_shutdown_is_not_a_loss(harness: Harness) -> None:
    record = await harness.pending()

    harness.close_connection(CloseReason.SHUTDOWN)

    assert not harness.guard.lost and harness.wakeups == 0 and not record.done()
    assert await harness.producer.client.send(0, PRODUCE) == "response"


async def test_a_produce_request_that_cannot_reach_its_broker_trips_the_guard(harness: Harness) -> None:
    record = await harness.pending()
    harness.send_error = NodeNotReadyError("node 111 is not ready")

    with pytest.raises(NodeNotReadyError):
        await harness.producer.client.send(111, PRODUCE)

    assert harness.guard.lost and harness.wakeups == 1
    with pytest.raises(KafkaConnectionError):
        await record
    harness.send_error = None
    with pytest.raises(ProducerRetiredError):
        await harness.producer.client.send(111, PRODUCE)
    harness.close_connection(CloseReason.CONNECTION_BROKEN)  # trips once only
    assert harness.wakeups == 1


async def test_an_idle_drop_only_makes_the_publisher_reconnect(
    kafka_broker: EmbeddedBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 1})
    metrics = h.Metrics()
    publisher = KafkaPublisher(
        h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path)), metrics=metrics
    )
    await publisher.start()
    publisher.publish(h.event())
    await h.eventually(lambda: metrics.value("llmrouter_events_published_total", type="error") == 1)
    first = publisher._producer
    assert first is not None

    caplog.set_level(logging.WARNING)
    for conn in list(first.client._conns.values()):  # what aiokafka does after 9 idle minutes
        conn.close(reason=CloseReason.IDLE_DROP)
    await h.eventually(lambda: publisher._producer not in (None, first), what="a new producer")
    publisher.publish(h.event())
    await h.eventually(lambda: metrics.value("llmrouter_events_published_total", type="error") == 2)
    await publisher.stop()

    assert metrics.value("llmrouter_events_spooled_total") == 0
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]  # quiet, too
