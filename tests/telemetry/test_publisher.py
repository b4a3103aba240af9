"""KafkaPublisher against the real embedded broker (shared per session; each test has its topic)."""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from router_service import domain
from router_service.embedded.broker import EmbeddedBroker, free_port
from router_service.telemetry import event_codec, publisher_config
from router_service.telemetry import events as ev
from router_service.telemetry.kafka_client import ensure_topics
from router_service.telemetry.publisher import KafkaPublisher, PublisherConfig
from router_service.telemetry.spool import Spool
from tests.telemetry import helpers as h


async def test_publishes_exactly_the_events_given(kafka_broker: EmbeddedBroker, tmp_path: Path) -> None:
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 3})
    metrics = h.Metrics()
    publisher = KafkaPublisher(
        h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path)), metrics=metrics
    )
    await publisher.start()
    sent = h.events(200) + [h.event(body, request_id="req-kinds") for body in h.bodies().values()]

    for event in sent:
        publisher.publish(event)
    await h.eventually(lambda: metrics.value("llmrouter_events_published_total", type="feedback") >= 201)
    await publisher.stop()

    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in sent})
    assert sorted(r[0] for r in records) == sorted(e.event_id for e in sent)
    by_id = {e.event_id: e for e in sent}
    assert all(key == by_id[event_id].context.request_id.encode() for event_id, key, _ in records)
    assert {event_codec.kind_of(headers) for _, _, headers in records} == set(h.bodies())
    assert metrics.value("llmrouter_events_spooled_total") == 0
    assert metrics.value("llmrouter_events_dropped_total", reason="spool_full") == 0


@pytest.mark.parametrize("durable", [True, False])
async def test_events_of_one_request_arrive_in_publish_order(
    kafka_broker: EmbeddedBroker, tmp_path: Path, durable: bool
) -> None:
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 4})
    publisher = KafkaPublisher(
        h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), send_batch_max=7, durable=durable)
    )
    await publisher.start()
    sent = h.events(120, request_ids=("r1", "r2", "r3"))

    for event in sent:
        publisher.publish(event)
    await publisher.stop()

    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in sent})
    for request_id in ("r1", "r2", "r3"):
        got = [event_id for event_id, key, _ in records if key == request_id.encode()]
        assert got == [e.event_id for e in sent if e.context.request_id == request_id]


async def test_lingering_gathers_events_and_delivers_them_without_a_stop(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 3})
    metrics = h.Metrics()
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), linger_ms=200)
    publisher = KafkaPublisher(config, metrics=metrics)
    await publisher.start()
    await h.eventually(lambda: metrics.value("llmrouter_events_broker_up") == 1, what="connect")
    sent = h.events(30)

    for event in sent:  # one at a time, as requests publish them: rounds gather several
        publisher.publish(event)
        await asyncio.sleep(0.005)
    await h.eventually(lambda: metrics.value("llmrouter_events_published_total", type="feedback") == 30)
    await publisher.stop()

    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in sent})
    assert sorted(r[0] for r in records) == sorted(e.event_id for e in sent)


async def test_stop_cuts_a_long_linger_short_and_flushes(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 1})
    metrics = h.Metrics()
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), linger_ms=60_000)
    publisher = KafkaPublisher(config, metrics=metrics)
    await publisher.start()
    await h.eventually(lambda: metrics.value("llmrouter_events_broker_up") == 1, what="connect")
    sent = h.events(5)
    for event in sent:
        publisher.publish(event)
    await asyncio.sleep(0.05)  # the sender is lingering now

    started = time.monotonic()
    await publisher.stop()

    assert time.monotonic() - started < 5.0
    assert metrics.value("llmrouter_events_published_total", type="feedback") == 5
    assert metrics.value("llmrouter_events_spooled_total") == 0


async def test_publish_is_synchronous_and_returns_at_once(tmp_path: Path) -> None:
    # No broker at all: publish() must still return immediately, from plain synchronous code.
    publisher = KafkaPublisher(h.publisher_config(f"127.0.0.1:{free_port()}", "t", str(tmp_path)))
    await publisher.start()
    assert not inspect.iscoroutinefunction(publisher.publish)

    def handler() -> float:  # a sync caller: if publish needed awaiting, nothing would be sent
        started = time.perf_counter()
        for event in h.events(1000):
            publisher.publish(event)
        return time.perf_counter() - started

    assert handler() < 1.0
    await publisher.stop()


async def test_broker_down_at_start_spools_and_a_later_publisher_replays(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = h.unique_topic()
    metrics = h.Metrics()
    down = KafkaPublisher(
        h.publisher_config(f"127.0.0.1:{free_port()}", topic, str(tmp_path)), metrics=metrics
    )
    started = time.monotonic()
    await down.start()  # degraded, not failed
    assert time.monotonic() - started < 1.0
    sent = h.events(50)
    for event in sent:
        down.publish(event)
    await down.stop(timeout=2.0)
    assert metrics.value("llmrouter_events_spooled_total") == 50
    assert metrics.value("llmrouter_events_spool_bytes") > 0
    assert metrics.value("llmrouter_events_broker_up") == 0

    await ensure_topics(kafka_broker.bootstrap, {topic: 2})
    replay_metrics = h.Metrics()
    up = KafkaPublisher(
        h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path)), metrics=replay_metrics
    )
    await up.start()
    await h.eventually(lambda: replay_metrics.value("llmrouter_events_replayed_total") == 50, what="replay")
    await up.stop()

    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in sent})
    assert sorted(r[0] for r in records) == sorted(e.event_id for e in sent)
    assert replay_metrics.value("llmrouter_events_spool_bytes") == 0


async def test_never_creates_its_topic(kafka_broker: EmbeddedBroker, tmp_path: Path) -> None:
    topic = h.unique_topic()
    metrics = h.Metrics()
    publisher = KafkaPublisher(
        h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path)), metrics=metrics
    )
    await publisher.start()
    sent = h.events(10)
    for event in sent:
        publisher.publish(event)
    await h.eventually(lambda: metrics.value("llmrouter_events_spooled_total") == 10, what="spooling")
    assert metrics.value("llmrouter_events_publish_errors_total", error="topic_missing") >= 1
    assert topic not in await _topics(kafka_broker.bootstrap)

    await ensure_topics(kafka_broker.bootstrap, {topic: 1})  # an operator creates it: replay follows
    await h.eventually(lambda: metrics.value("llmrouter_events_replayed_total") == 10, what="replay")
    await publisher.stop()


async def test_queue_overflow_spills_to_spool_and_keeps_order(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 1})
    metrics = h.Metrics()
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), queue_max=10, send_batch_max=25)
    publisher = KafkaPublisher(config, metrics=metrics)
    await publisher.start()
    sent = h.events(300, request_ids=("one",))

    for event in sent:  # no await in between: the queue overflows at once
        publisher.publish(event)
    assert metrics.value("llmrouter_events_spooled_total") == 290
    await h.eventually(lambda: metrics.value("llmrouter_events_published_total", type="feedback") >= 300)
    await publisher.stop()

    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in sent})
    assert [r[0] for r in records] == [e.event_id for e in sent]
    assert metrics.value("llmrouter_events_dropped_total", reason="spool_full") == 0


async def test_full_spool_drops_are_counted(tmp_path: Path) -> None:
    metrics = h.Metrics()
    config = h.publisher_config(f"127.0.0.1:{free_port()}", "t", str(tmp_path), spool_max_bytes=4096)
    publisher = KafkaPublisher(config, metrics=metrics)
    await publisher.start()
    await h.eventually(
        lambda: metrics.value("llmrouter_events_publish_errors_total", error="KafkaConnectionError") > 0
    )

    for event in h.events(100):
        publisher.publish(event)
    await publisher.stop(timeout=1.0)

    spooled = metrics.value("llmrouter_events_spooled_total")
    dropped = metrics.value("llmrouter_events_dropped_total", reason="spool_full")
    assert 0 < spooled < 100 and spooled + dropped == 100


async def test_stop_is_idempotent_and_later_events_are_dropped_visibly(tmp_path: Path) -> None:
    metrics = h.Metrics()
    publisher = KafkaPublisher(
        h.publisher_config(f"127.0.0.1:{free_port()}", "t", str(tmp_path)), metrics=metrics
    )
    await publisher.start()
    await publisher.stop(timeout=1.0)
    await publisher.stop(timeout=1.0)

    publisher.publish(h.event())
    assert metrics.value("llmrouter_events_dropped_total", reason="closed") == 1


async def test_an_oversized_event_is_dropped_without_wedging_the_rest(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 1})
    metrics = h.Metrics()
    config = h.publisher_config(
        kafka_broker.bootstrap, topic, str(tmp_path), include_content=True, max_request_bytes=4096
    )
    publisher = KafkaPublisher(config, metrics=metrics)
    await publisher.start()
    huge = h.event(h.completion(prompt_text="x" * 10_000, completion_text="y"))
    small = h.events(5)

    for event in [huge, *small]:
        publisher.publish(event)
    await h.eventually(lambda: metrics.value("llmrouter_events_published_total", type="feedback") == 5)
    await publisher.stop()

    assert metrics.value("llmrouter_events_dropped_total", reason="too_large") == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"encoding": "xml"}, "encoding"),
        ({"compression_type": "brotli"}, "compression_type"),
        ({"queue_max": 0}, "positive"),
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PublisherConfig(**overrides)  # type: ignore[arg-type]


def test_config_says_which_package_a_codec_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(publisher_config._COMPRESSION_CHECKS, "zstd", lambda: False)  # as without cramjam
    with pytest.raises(ValueError, match="cramjam"):
        PublisherConfig(compression_type="zstd")


async def _topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def test_a_durable_publish_is_on_disk_when_it_returns(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 3})
    metrics = h.Metrics()
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), linger_ms=10_000)
    publisher = KafkaPublisher(config, metrics=metrics)
    await publisher.start()
    sent = h.events(20, request_ids=[f"req-durable-{i:02d}" for i in range(20)])

    for event in sent:
        publisher.publish(event)
        # No round has run (the linger is long): the event is in a segment file, as a crash finds it.
        assert f"req-durable-{sent.index(event):02d}".encode() in _segment_bytes(tmp_path)
    await publisher.stop()

    assert metrics.value("llmrouter_events_published_total", type="feedback") == 20
    assert metrics.value("llmrouter_events_spooled_total") == 0  # the log is not an outage's spool
    with Spool(tmp_path, 1 << 20) as spool:  # delivered rounds trimmed the log to nothing
        assert spool.is_empty and not list(spool.replay())


async def test_without_durable_a_healthy_broker_leaves_the_disk_alone(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 3})
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), linger_ms=10_000, durable=False)
    publisher = KafkaPublisher(config)
    await publisher.start()
    sent = h.events(20)

    for event in sent:
        publisher.publish(event)
    assert _segment_bytes(tmp_path) == b""
    await publisher.stop()

    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in sent})
    assert len(records) == len(sent)


async def test_an_untrimmed_durable_log_is_replayed_once_by_the_next_publisher(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Records logged but never trimmed, as a SIGKILL leaves them (tests/integration/
    test_router_crash.py kills a real router process): the next publisher sends them first."""
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 1})  # one partition: one order to check
    unreachable = h.publisher_config(f"127.0.0.1:{free_port()}", topic, str(tmp_path), linger_ms=10_000)
    dead = KafkaPublisher(unreachable)
    await dead.start()
    left = h.events(15, request_ids=("req-left",))
    for event in left:
        dead.publish(event)
    await dead.stop(timeout=1.0)
    metrics = h.Metrics()
    successor = KafkaPublisher(
        h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path)), metrics=metrics
    )
    await successor.start()
    await h.eventually(lambda: metrics.value("llmrouter_events_replayed_total") == 15, what="replayed")
    new = h.events(5, request_ids=("req-new",))
    for event in new:
        successor.publish(event)
    await successor.stop()

    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in left + new})
    keys = [key for _, key, _ in records]
    assert keys == [b"req-left"] * 15 + [b"req-new"] * 5  # one partition's order: the log first
    assert len({event_id for event_id, _, _ in records}) == 20


def _segment_bytes(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.glob("*.seg")))


def _call_events(request_id: str, terminal: ev.EventBody) -> list[ev.TelemetryEvent]:
    """A call's events as the engine publishes them: decision, an attempt, then `terminal`."""
    bodies: list[ev.EventBody] = [
        ev.DecisionEvent(h.decision()),
        ev.AttemptEvent(0, h.attempt(), "m"),
        terminal,
    ]
    return [h.event(body, request_id=request_id) for body in bodies]


@pytest.mark.parametrize(
    "terminal", [h.completion(), ev.ErrorEvent("UNAVAILABLE", "ALL_UPSTREAMS_FAILED", "down", 1)]
)
async def test_a_calls_events_reach_the_disk_together_with_its_terminal_event(
    kafka_broker: EmbeddedBroker, tmp_path: Path, terminal: ev.EventBody
) -> None:
    """One write per call: the decision and attempt wait (in the queue, not the log) for the
    completion or error, and are on disk when that publish() returns, before the call answers."""
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 3})
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), linger_ms=10_000)
    publisher = KafkaPublisher(config)
    await publisher.start()
    decision, attempt, end = _call_events("req-held", terminal)

    publisher.publish(decision)
    publisher.publish(attempt)
    assert b"req-held" not in _segment_bytes(tmp_path)
    publisher.publish(end)
    on_disk = _segment_bytes(tmp_path)
    for event in (decision, attempt, end):
        assert event.event_id.encode() in on_disk
    await publisher.stop()

    records = await h.read_topic(
        kafka_broker.bootstrap, topic, {decision.event_id, attempt.event_id, end.event_id}
    )
    assert [event_id for event_id, _, _ in records] == [decision.event_id, attempt.event_id, end.event_id]


async def test_a_late_attempt_with_billed_usage_is_on_disk_when_published(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A hedge loser that answered after its call did: no terminal event follows, and the
    upstream billed it, so it is written at once like any event outside a call."""
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 3})
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), linger_ms=10_000)
    publisher = KafkaPublisher(config)
    await publisher.start()
    loser = h.attempt(
        outcome=domain.AttemptOutcome.SUCCESS,
        error_class="",
        http_status=200,
        unused_usage=domain.Usage(10, 5, 0),
    )
    late = h.event(ev.AttemptEvent(1, loser, "m", hedged=True), request_id="req-late")

    publisher.publish(late)
    assert late.event_id.encode() in _segment_bytes(tmp_path)
    await publisher.stop()


async def test_held_events_the_sender_delivers_are_trimmed_from_the_log(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The sender writes held events before it takes them: a decision whose call has not ended
    yet, delivered, is trimmed like any other (not left in the log to be replayed again)."""
    topic = h.unique_topic()
    await ensure_topics(kafka_broker.bootstrap, {topic: 3})
    metrics = h.Metrics()
    publisher = KafkaPublisher(
        h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path)), metrics=metrics
    )
    await publisher.start()
    decision, _, _ = _call_events("req-running", h.completion())

    publisher.publish(decision)
    await h.eventually(lambda: metrics.value("llmrouter_events_published_total", type="decision") == 1)
    await publisher.stop()

    with Spool(tmp_path, 1 << 20) as spool:
        assert spool.is_empty and not list(spool.replay())
