"""Broker-down drills: kill the broker mid-load, keep publishing, restart it, lose nothing.

Each test runs its own EmbeddedBroker (the shared session broker must stay up). Tansu keeps
everything in memory, so the restarted broker is empty: what it holds afterwards was delivered
after the restart, which is exactly what proves the spool replay.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from router_service.embedded.broker import EmbeddedBroker
from router_service.telemetry.events import TelemetryEvent
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.publisher import KafkaPublisher
from tests.telemetry import helpers as h


async def test_kill_broker_mid_load_then_restart_loses_no_event(tmp_path: Path) -> None:
    async with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        topic = h.unique_topic()
        await ensure_topics(broker.bootstrap, {topic: 3})
        metrics = h.Metrics()
        publisher = KafkaPublisher(
            h.publisher_config(broker.bootstrap, topic, str(tmp_path / "spool")), metrics=metrics
        )
        await publisher.start()
        await _publish_under_load(publisher, h.events(30))
        await h.eventually(lambda: _published(metrics) >= 30, what="delivery before the outage")

        await broker.kill()
        outage = h.events(200, request_ids=("o1", "o2"))
        slowest = await _publish_under_load(publisher, outage)
        await h.eventually(lambda: metrics.value("llmrouter_events_spooled_total") >= 200, what="spooling")
        assert metrics.value("llmrouter_events_broker_up") == 0
        assert slowest < 0.05  # the request path kept being served

        await broker.start()  # same port, empty (memory storage): the operator recreates the topic
        await ensure_topics(broker.bootstrap, {topic: 3})
        await h.eventually(lambda: metrics.value("llmrouter_events_replayed_total") >= 200, what="replay")
        after = h.events(30, request_ids=("o1", "o2"))
        await _publish_under_load(publisher, after)
        await publisher.stop()

        records = await h.read_topic(broker.bootstrap, topic, {e.event_id for e in outage + after})
    got = [event_id for event_id, _, _ in records]
    missing = {e.event_id for e in outage + after} - set(got)
    assert not missing, f"{len(missing)} events lost"
    for request_id in ("o1", "o2"):  # replayed before anything newer, in publish order
        mine = [e.event_id for e in outage + after if e.context.request_id == request_id]
        first_seen = list(dict.fromkeys(i for i, key, _ in records if key == request_id.encode()))
        assert first_seen == mine
    assert metrics.value("llmrouter_events_dropped_total", reason="spool_full") == 0
    assert metrics.value("llmrouter_events_spool_bytes") == 0


async def test_stop_during_an_outage_spools_the_in_flight_batch_for_the_next_run(tmp_path: Path) -> None:
    spool_dir = str(tmp_path / "spool")
    async with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        topic = h.unique_topic()
        await ensure_topics(broker.bootstrap, {topic: 2})
        metrics = h.Metrics()
        first = KafkaPublisher(h.publisher_config(broker.bootstrap, topic, spool_dir), metrics=metrics)
        await first.start()
        first.publish(h.event())
        await h.eventually(lambda: _published(metrics) >= 1, what="first delivery")

        await broker.kill()
        stranded = h.events(50)
        for event in stranded:
            first.publish(event)
        await asyncio.sleep(0.1)  # the sender is now waiting for acks that will never come
        started = time.monotonic()
        await first.stop(timeout=0.5)
        assert time.monotonic() - started < 2.0
        assert metrics.value("llmrouter_events_spooled_total") == 50

        await broker.start()
        await ensure_topics(broker.bootstrap, {topic: 2})
        replay_metrics = h.Metrics()
        second = KafkaPublisher(
            h.publisher_config(broker.bootstrap, topic, spool_dir), metrics=replay_metrics
        )
        await second.start()
        await h.eventually(
            lambda: replay_metrics.value("llmrouter_events_replayed_total") >= 50, what="replay"
        )
        await second.stop()

        records = await h.read_topic(broker.bootstrap, topic, {e.event_id for e in stranded})
    assert {e.event_id for e in stranded} <= {event_id for event_id, _, _ in records}


async def test_nothing_is_sent_to_a_restarted_broker_until_its_topic_is_back(tmp_path: Path) -> None:
    """Regression: aiokafka resent the batch in flight at the outage to the restarted, empty broker
    before the topic was recreated. Tansu acked it into the missing topic; once the topic was
    recreated its offsets restarted under those stale batches, so the next produce failed
    (UnknownError) and records acked later were hidden: events published after the restart were lost.
    """
    async with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        topic = h.unique_topic()
        await ensure_topics(broker.bootstrap, {topic: 3})
        metrics = h.Metrics()
        # The default timeout: in-flight batches outlive a short outage inside the producer.
        config = h.publisher_config(
            broker.bootstrap, topic, str(tmp_path / "spool"), request_timeout_ms=10_000
        )
        publisher = KafkaPublisher(config, metrics=metrics)
        await publisher.start()
        keys = ("r1", "r2", "r3", "r4", "r5", "r6")
        await _publish_under_load(publisher, h.events(30, request_ids=keys))
        await h.eventually(lambda: _published(metrics) >= 30, what="delivery before the outage")

        await broker.kill()
        outage = h.events(60, request_ids=keys)
        await _publish_under_load(publisher, outage)
        await broker.start()  # same port, empty, and no topic yet
        await asyncio.sleep(1.0)  # the operator is slow: ten of aiokafka's retry intervals
        await ensure_topics(broker.bootstrap, {topic: 3})
        after = h.events(30, request_ids=keys)
        await _publish_under_load(publisher, after)

        # Read while the publisher runs: the spool replay and the live events must all arrive.
        records = await h.read_topic(broker.bootstrap, topic, {e.event_id for e in outage + after})
        await publisher.stop()
        broker_log = broker.log_path.read_text(errors="replace")
    got = [event_id for event_id, _, _ in records]
    missing = {e.event_id for e in outage + after} - set(got)
    assert not missing, f"{len(missing)} events lost"
    for request_id in keys:  # the outage's events before the later ones, in publish order
        mine = [e.event_id for e in outage + after if e.context.request_id == request_id]
        assert list(dict.fromkeys(i for i, key, _ in records if key == request_id.encode())) == mine
    assert "AlreadyExists" not in broker_log  # the symptom of records sent before the topic existed


def _published(metrics: h.Metrics) -> float:
    return sum(
        metrics.value("llmrouter_events_published_total", type=kind)
        for kind in ("decision", "attempt", "completion", "error", "feedback")
    )


async def _publish_under_load(publisher: KafkaPublisher, events: list[TelemetryEvent]) -> float:
    """Publish in small bursts, as request handlers would; return the slowest publish() call."""
    slowest = 0.0
    for start in range(0, len(events), 10):
        for event in events[start : start + 10]:
            began = time.perf_counter()
            publisher.publish(event)
            slowest = max(slowest, time.perf_counter() - began)
        await asyncio.sleep(0.01)
    return slowest
