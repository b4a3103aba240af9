"""ForwardingPublisher: a real forwarder process, a real embedded broker, a real spool.

(Per-request ordering is tested for both publishers in test_publisher.py.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from router_service.embedded.broker import EmbeddedBroker, free_port
from router_service.telemetry import event_codec, event_frames
from router_service.telemetry import forwarder_wire as wire
from router_service.telemetry.forwarding_publisher import (
    FORWARDER_COMMAND,
    ForwarderError,
    ForwardingPublisher,
    RestartPolicy,
)
from router_service.telemetry.kafka_client import KafkaSecurity, ensure_topics
from router_service.telemetry.publisher import KafkaPublisher
from router_service.telemetry.spool import Spool
from tests.telemetry import helpers as h


async def _topic(broker: EmbeddedBroker, partitions: int = 3) -> str:
    topic = h.unique_topic()
    await ensure_topics(broker.bootstrap, {topic: partitions})
    return topic


def _forwarder_pid(publisher: ForwardingPublisher) -> int:
    process = publisher._process  # the test's one look inside: which process to kill
    assert process is not None and process.returncode is None
    return process.pid


def _command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


async def test_publishes_exactly_the_events_given_with_the_routers_identity(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = await _topic(kafka_broker)
    metrics = h.Metrics()
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), router_instance="router-7")
    publisher = ForwardingPublisher(config, metrics=metrics)
    # Its drop reason exists at zero from the start, so an alert on it sees a series, not a gap.
    assert (
        metrics.registry.get_sample_value("llmrouter_events_dropped_total", {"reason": "forwarder_behind"})
        == 0
    )
    await publisher.start()
    sent = h.events(300) + [h.event(body, request_id="req-kinds") for body in h.bodies().values()]

    for event in sent:
        publisher.publish(event)
    # The forwarder's counters reach this process's metrics while it runs.
    await h.eventually(lambda: metrics.value("llmrouter_events_published_total", type="feedback") >= 301)
    assert metrics.value("llmrouter_events_forwarder_up") == 1
    assert metrics.value("llmrouter_events_broker_up") == 1
    await h.eventually(lambda: metrics.value("llmrouter_events_queue_depth") == 0, what="every frame settled")
    await publisher.stop()

    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in sent})
    assert sorted(r[0] for r in records) == sorted(e.event_id for e in sent)
    assert {event_codec.kind_of(headers) for _, _, headers in records} == set(h.bodies())
    assert all(dict(headers)["ce_source"] == b"//llmrouter/router/router-7" for _, _, headers in records)
    assert metrics.value("llmrouter_events_forwarder_up") == 0
    assert metrics.value("llmrouter_events_queue_depth") == 0
    assert metrics.value("llmrouter_events_spooled_total") == 0


async def test_a_killed_forwarder_is_replaced_and_no_event_is_lost(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = await _topic(kafka_broker)
    metrics = h.Metrics()
    publisher = ForwardingPublisher(
        h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), linger_ms=20), metrics=metrics
    )
    await publisher.start()
    before = h.events(200)
    # Id-less, like the engine's events: the forwarder draws their ids, the same for a resent frame.
    during = [e._replace(event_id="") for e in h.events(200, request_ids=("req-d", "req-e"))]
    for event in before:
        publisher.publish(event)

    os.kill(_forwarder_pid(publisher), signal.SIGKILL)
    for event in during:  # published while it is dead or starting: held, then sent to the next
        publisher.publish(event)
    await h.eventually(
        lambda: metrics.value("llmrouter_events_forwarder_restarts_total") == 1, what="restart"
    )
    await h.eventually(lambda: metrics.value("llmrouter_events_forwarder_up") == 1, what="new forwarder")
    await publisher.stop()

    sent_ids = {e.event_id for e in before}
    records = await h.read_topic(kafka_broker.bootstrap, topic, sent_ids)
    for _ in range(10):  # the id-less ones cannot be waited for by id
        drawn = {event_id for event_id, key, _ in records if key in (b"req-d", b"req-e")}
        if len(drawn) >= 200:
            break
        records = await h.read_topic(kafka_broker.bootstrap, topic, sent_ids)
    assert sent_ids <= {r[0] for r in records}  # at least once: copies of resent frames may be there too
    # Exactly 200 distinct ids: a frame sent again to the new forwarder kept its ids.
    assert len(drawn) == 200
    assert metrics.value("llmrouter_events_dropped_total", reason="forwarder_behind") == 0


async def test_a_stalled_forwarder_bounds_memory_and_every_lost_event_is_counted(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = await _topic(kafka_broker)
    metrics = h.Metrics()
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path), linger_ms=1, queue_max=50)
    publisher = ForwardingPublisher(config, metrics=metrics)
    await publisher.start()
    pid = _forwarder_pid(publisher)
    sent = h.events(300)

    os.kill(pid, signal.SIGSTOP)  # alive but silent: no acknowledgements come back
    try:
        for first in range(0, 300, 30):
            for event in sent[first : first + 30]:
                publisher.publish(event)
            await asyncio.sleep(0.05)
        # At most queue_max events wait unsent, and at most queue_max more sit unacknowledged.
        assert metrics.value("llmrouter_events_queue_depth") <= 100
    finally:
        os.kill(pid, signal.SIGCONT)
    await h.eventually(lambda: metrics.value("llmrouter_events_queue_depth") == 0, what="the backlog settled")
    await publisher.stop()

    dropped = metrics.value("llmrouter_events_dropped_total", reason="forwarder_behind")
    delivered: set[str] = set()
    for _ in range(10):  # which ids were dropped is unknown, so read until the count adds up
        delivered = {r[0] for r in await h.read_topic(kafka_broker.bootstrap, topic, set(), timeout_s=1.0)}
        if len(delivered) + dropped >= len(sent):
            break
    assert dropped > 0
    assert delivered <= {e.event_id for e in sent}
    assert len(delivered) + dropped == len(sent)  # nothing lost without being counted


async def test_broker_down_the_forwarder_spools_and_a_later_publisher_replays(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = h.unique_topic()
    metrics = h.Metrics()
    dead = f"127.0.0.1:{free_port()}"
    publisher = ForwardingPublisher(h.publisher_config(dead, topic, str(tmp_path)), metrics=metrics)
    await publisher.start()
    sent = h.events(50)
    for event in sent:
        publisher.publish(event)
    await h.eventually(lambda: metrics.value("llmrouter_events_spooled_total") == 50, what="spooled")
    await publisher.stop()
    assert metrics.value("llmrouter_events_spool_bytes") > 0
    assert metrics.value("llmrouter_events_broker_up") == 0

    await ensure_topics(kafka_broker.bootstrap, {topic: 2})
    replay_metrics = h.Metrics()
    replay = KafkaPublisher(
        h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path)), metrics=replay_metrics
    )
    await replay.start()
    await h.eventually(lambda: replay_metrics.value("llmrouter_events_replayed_total") == 50, what="replay")
    await replay.stop()

    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in sent})
    assert sorted(r[0] for r in records) == sorted(e.event_id for e in sent)


async def test_events_the_forwarder_cannot_settle_are_spooled_by_the_router_at_stop(tmp_path: Path) -> None:
    # A "forwarder" that starts like one, then neither acknowledges nor exits when told to stop.
    fake = tmp_path / "silent_forwarder.py"
    fake.write_text(
        "import sys, time\n"
        "from router_service.telemetry import forwarder_wire as w\n"
        "sys.stdin.buffer.read(13)\n"
        "sys.stdout.buffer.write(w.report_message(0, {}, {})); sys.stdout.flush()\n"
        "time.sleep(60)\n"
    )
    metrics = h.Metrics()
    spool_dir = tmp_path / "spool"
    config = h.publisher_config(f"127.0.0.1:{free_port()}", "t", str(spool_dir), linger_ms=1)
    publisher = ForwardingPublisher(config, metrics=metrics, command=(sys.executable, str(fake)))
    await publisher.start()
    sent = h.events(40)
    for event in sent:
        publisher.publish(event)

    await publisher.stop(timeout=3.0)

    assert metrics.value("llmrouter_events_spooled_total") == 40
    spool = Spool(str(spool_dir), 1 << 20)
    try:
        spooled = [record for _, record in spool.read_batch(100)]
    finally:
        spool.close()
    assert sorted(dict(r.headers)["ce_id"].decode() for r in spooled) == sorted(e.event_id for e in sent)


def _crashing_forwarder(tmp_path: Path) -> Path:
    """A "forwarder" that starts like one, then dies on the first frame of events, every time (as
    a real one would on a frame it cannot read)."""
    fake = tmp_path / "crashing_forwarder.py"
    fake.write_text(
        "import struct, sys\n"
        "from router_service.telemetry import forwarder_wire as w\n"
        "stdin = sys.stdin.buffer\n"
        "stdin.read(struct.unpack('>cQI', stdin.read(13))[2])  # the config\n"
        "sys.stdout.buffer.write(w.report_message(0, {}, {})); sys.stdout.flush()\n"
        "stdin.read(13)\n"
        "sys.exit(3)\n"
    )
    return fake


async def test_a_crash_looping_forwarder_is_given_up_and_the_router_publishes_everything_itself(
    kafka_broker: EmbeddedBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = _crashing_forwarder(tmp_path)
    topic = await _topic(kafka_broker)
    metrics = h.Metrics()
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path / "spool"), linger_ms=10)
    policy = RestartPolicy(delays_s=(0.05,), max_attempts=3, window_s=60.0)
    publisher = ForwardingPublisher(
        config, metrics=metrics, command=(sys.executable, str(fake)), restarts=policy
    )
    await publisher.start()
    before = h.events(100)
    for event in before:
        publisher.publish(event)
    # It and three restarts die on the (resent) frames; a fourth restart is not attempted.
    await h.eventually(lambda: publisher._inline is not None, what="publishing moved in-process")
    after = h.events(50, request_ids=("req-after",))
    for event in after:  # straight to the in-process publisher
        publisher.publish(event)
    await publisher.stop()

    sent = {e.event_id for e in before + after}
    records = await h.read_topic(kafka_broker.bootstrap, topic, sent)
    assert {r[0] for r in records} == sent
    # Four exits: three were followed by a new forwarder; after the fourth, it was given up.
    assert metrics.value("llmrouter_events_forwarder_restarts_total") == 4
    assert metrics.value("llmrouter_events_forwarder_up") == 0
    assert metrics.value("llmrouter_events_dropped_total", reason="forwarder_behind") == 0
    assert "publishing events in the router process" in caplog.text


async def test_stop_during_the_switch_to_in_process_publishing_waits_for_it_and_loses_nothing(
    kafka_broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = await _topic(kafka_broker)
    metrics = h.Metrics()
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path / "spool"), linger_ms=10)
    policy = RestartPolicy(delays_s=(0.05,), max_attempts=0, window_s=60.0)  # give up at once
    fake = (sys.executable, str(_crashing_forwarder(tmp_path)))
    publisher = ForwardingPublisher(config, metrics=metrics, command=fake, restarts=policy)
    # Hold the switch's in-process publisher at the end of its start(), its spool open, so that
    # stop() comes in the middle of the switch.
    entered, release = asyncio.Event(), asyncio.Event()
    real_start = KafkaPublisher.start

    async def held_start(self: KafkaPublisher) -> None:
        await real_start(self)
        entered.set()
        await release.wait()

    monkeypatch.setattr(KafkaPublisher, "start", held_start)
    await publisher.start()
    sent = h.events(100)
    for event in sent:
        publisher.publish(event)
    await asyncio.wait_for(entered.wait(), 10)
    stopping = asyncio.create_task(publisher.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done()  # it waits for the switch...
    release.set()
    await asyncio.wait_for(stopping, 15)  # ...which completes, and then it flushes that publisher

    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in sent})
    assert {r[0] for r in records} == {e.event_id for e in sent}
    assert metrics.value("llmrouter_events_dropped_total", reason="spool_error") == 0


async def test_a_forwarder_that_cannot_open_its_spool_fails_start_with_the_reason(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    publisher = ForwardingPublisher(h.publisher_config("127.0.0.1:1", "t", str(not_a_dir / "spool")))

    with pytest.raises(ForwarderError, match="did not start"):
        await publisher.start()


async def test_stop_is_idempotent_and_later_events_are_dropped_visibly(tmp_path: Path) -> None:
    metrics = h.Metrics()
    publisher = ForwardingPublisher(h.publisher_config("127.0.0.1:1", "t", str(tmp_path)), metrics=metrics)
    await publisher.start()
    await publisher.stop(timeout=2.0)
    await publisher.stop(timeout=2.0)

    publisher.publish(h.event())

    assert metrics.value("llmrouter_events_dropped_total", reason="closed") == 1


async def test_the_broker_password_never_reaches_the_forwarders_log_or_command_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    password = "kafka-secret-9f8e7d6c5b4a"
    security = KafkaSecurity(
        security_protocol="SASL_PLAINTEXT", sasl_plain_username="router", sasl_plain_password=password
    )
    config = h.publisher_config(f"127.0.0.1:{free_port()}", "t", str(tmp_path), security=security)
    publisher = ForwardingPublisher(config)
    await publisher.start()
    command_line = _command_line(_forwarder_pid(publisher))
    for event in h.events(5):
        publisher.publish(event)
    await publisher.stop(timeout=2.0)

    logged = capfd.readouterr().err  # the forwarder writes its log to the stderr it inherited
    assert "event-forwarder" in logged and "cannot reach the event broker" in logged  # it did log
    assert password not in logged
    assert password.encode() not in command_line


async def test_a_forwarder_whose_router_dies_still_delivers_what_it_was_given(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = await _topic(kafka_broker)
    config = h.publisher_config(kafka_broker.bootstrap, topic, str(tmp_path))
    reports_fd, forwarder_out = os.pipe()  # its stdout, a pipe this test can close like a dying router
    forwarder = await asyncio.create_subprocess_exec(
        *FORWARDER_COMMAND, stdin=asyncio.subprocess.PIPE, stdout=forwarder_out
    )
    os.close(forwarder_out)
    reports = asyncio.StreamReader()
    reports_pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reports), os.fdopen(reports_fd, "rb", buffering=0)
    )
    assert forwarder.stdin is not None
    forwarder.stdin.write(wire.config_message(config, id_seed=7))
    started = await wire.read_message(reports)
    assert started is not None and started[0] == wire.REPORT
    sent = h.events(50)

    forwarder.stdin.write(wire.message(wire.EVENTS, 1, event_frames.pack(sent)))
    await forwarder.stdin.drain()
    reports_pipe.close()  # the router dies: both pipes close, with no STOP and no more reports read
    forwarder.stdin.close()

    assert await asyncio.wait_for(forwarder.wait(), 15) == 0
    records = await h.read_topic(kafka_broker.bootstrap, topic, {e.event_id for e in sent})
    assert sorted(r[0] for r in records) == sorted(e.event_id for e in sent)
