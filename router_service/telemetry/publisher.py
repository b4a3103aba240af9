"""KafkaPublisher: the engine's EventSink, at-least-once into Kafka, spooling to disk when it must.

Flow. `publish()` encodes the event, writes it to the spool (with `durable`, see Durability) and
appends it to a bounded in-memory queue; it never awaits. One sender task, owned by
start()/stop(), runs in rounds: it waits for an event, lingers `linger_ms` for more to arrive,
hands them to an aiokafka producer as one batch per partition
(record_batches.py) and waits for the broker's acknowledgements. When the broker is unreachable
(at startup too), or a delivery fails or times out, the failed batch and everything queued behind
it go to the disk spool and the publisher switches to *spool mode*: new events go straight to the
spool while the sender probes the broker every `probe_interval_s`. Once it is back, the sender
replays the spool in order, acking segments as they are delivered, and only then returns to the
in-memory path. When the queue overflows, the publisher also enters spool mode. Events are lost
only when the spool is full too, and every loss is counted and logged.

Reconnects. Records reach a broker only through a producer that checked, once connected, that the
topic exists. aiokafka would resend a batch whose connection broke on its own, to whatever answers
at that address later, possibly a restarted broker that lost the topic (see producer_guard.py for
how that lost events). So a producer that loses any connection is retired at once: its batches
fail into the spool, and the sender reconnects with a new producer, which checks the topic again.

Cost. The sender shares the router's one core with request handling, and a round costs the
same several hundred microseconds of loop, producer and protocol work whether it carries one
event or a hundred. So the sender lingers: at a few hundred events per second, rounds of one or two
events made that fixed cost most of an event's price (bench/event_publisher.py, paced loads).
Events reach Kafka up to `linger_ms` later; a full batch (`send_batch_max`) goes at once.

In process, not in a child. An earlier version handed events to a forwarder child process that
published them from another core. It bought 3-5% of a router's throughput only where the child
had a core to itself, cost more CPU in all (packing and unpacking on top of publishing), and made
a router crash lose what sat in the pipe; with `durable`, the router encodes and writes every
event itself before answering, which was most of what the child took off its loop. Measured
back to back in bench/publishing.py (bench/results/publishing_decision.json, bench/README.md).

Durability (`durable`, the default). Every event is written to the spool, flushed to the OS
(one write()), before the call that published it answers: the spool is then a write-ahead log of
every event, and the in-memory queue only a read-ahead of its tail. A call's decision and attempt
events are held (queued, so the sender's timing is unchanged, but not written yet) until its
completion or error event, which publish() writes together with them and with whatever else is
held, in one write() before it returns, so before the call answers: one write per call instead of
three, and the syscall was most of a write's cost. Every other event (feedback, governance, a
refusal's error, a hedge loser's attempt carrying billed usage after its call answered) is
written before publish() returns, with whatever is held. A call still running when the router dies
has answered nothing and promised nothing; its held events were only in memory. The sender writes
what is held before it takes a batch (every record it sends then has its place in the log, in
queue order), so nothing is held longer than a linger. A delivered round trims the log
(`Spool.ack`, up to the round's last record). A router killed with events in the linger (SIGKILL,
the OOM killer, a crash) leaves them in the page cache, which outlives the process; the next start
replays them before anything new, as it replays an outage's spool. What had reached the broker but
not been trimmed yet is sent twice: consumers drop the copy by event_id. A machine crash or power
loss can still lose what the kernel had not written back (up to about 30 s by default). A failed
round needs no copying: its records and everything queued behind them are in the log already, and
replay starts at the first unacknowledged one. Cost: one small write per call on the request path
(bench/event_publisher.py's CPU cells, bench/README.md "What the durable log costs"). The holding
and writing live in write_ahead.py; this module decides when to queue, spool and trim. With
`durable: false`, events live in memory until acked (a killed router loses the linger's worth) and
touch the disk only when the broker cannot take them.

Ordering. While in spool mode, the queue only drains and new events only go to the spool, so the
queue always holds older events than the spool and delivery follows publish order. One narrow
exception: if the broker fails while the sender is still draining the queue after an overflow,
those (older) queued events are appended to the spool behind newer ones. Consumers dedupe on
event_id and must tolerate reordering anyway: at-least-once redelivery reorders too.

Topic. One topic for every event type (default "llmrouter.events.v1"), the type in the `ce_type`
header and in the value's oneof. One topic keeps a request's decision, attempts and completion in
one partition in order (they share the request_id key), gives consumers one subscription and
operators one set of ACLs, retention and partition counts; a consumer wanting one type filters on
the header without decoding the value. Per-type topics would lose that cross-type ordering.

Idempotence. `enable_idempotence=True` (the default) makes broker-side retries duplicate-free.
The embedded Tansu broker rejects the InitProducerId v0 request aiokafka sends, so the embedded
stack and tests set it to False; acks stay "all", and aiokafka keeps one in-flight batch per
partition, so order holds without it. Duplicates after a spool replay exist either way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from router_service.telemetry import event_codec
from router_service.telemetry.event_queue import EventQueue
from router_service.telemetry.events import TelemetryEvent
from router_service.telemetry.kafka_client import TopicMissingError, require_topic
from router_service.telemetry.producer_guard import ProducerGuard, fail_held_batches
from router_service.telemetry.publisher_config import DEFAULT_TOPIC, PublisherConfig
from router_service.telemetry.publisher_metrics import DropReporter, PublisherMetrics, default_metrics
from router_service.telemetry.record_batches import SentBatch, send_batches
from router_service.telemetry.redaction import ContentPolicy, build_redactor
from router_service.telemetry.spool import Spool, SpoolRecord
from router_service.telemetry.write_ahead import Pending, WriteAheadLog

__all__ = ["DEFAULT_TOPIC", "KafkaPublisher", "PublisherConfig"]

log = logging.getLogger(__name__)

_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)
# What a broken or unreachable broker raises; anything else is a bug and is logged as one.
_BROKER_ERRORS = (KafkaError, OSError, TimeoutError, TopicMissingError)


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class KafkaPublisher:
    """EventSink that publishes to Kafka, spools to disk when it cannot, and replays later."""

    def __init__(self, config: PublisherConfig, *, metrics: PublisherMetrics | None = None) -> None:
        self._config = config
        self._metrics = metrics or default_metrics()
        self._instance = config.router_instance or event_codec.default_router_instance()
        self._encoder = event_codec.RecordEncoder(config.encoding, self._instance)
        self._content = ContentPolicy(
            config.include_content, build_redactor(config.redact_pii, config.redact_patterns)
        )
        self._drops = DropReporter(self._metrics)
        self._queue: EventQueue[Pending] = EventQueue(config.queue_max)
        self._log: WriteAheadLog | None = None  # opened with the spool, by start()
        self._state = _State.NEW
        self._spool_mode = False
        self._healthy = True  # last delivery or connect worked; failures are logged on the edge only
        self._spool: Spool | None = None
        self._producer: AIOKafkaProducer | None = None
        self._guard: ProducerGuard | None = None  # watches self._producer's connections
        self._task: asyncio.Task[None] | None = None
        self._stop_requested = asyncio.Event()
        self._stopped = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool and start the sender. Never fails because the broker is down."""
        if self._state is not _State.NEW:
            raise RuntimeError(f"KafkaPublisher cannot start when {self._state.value}")
        cfg = self._config
        self._spool = Spool(
            cfg.spool_dir,
            cfg.spool_max_bytes,
            segment_bytes=cfg.spool_segment_bytes,
            sync_segments=not cfg.durable,  # see Spool: no fsync stalls on the request path
        )
        self._log = WriteAheadLog(self._spool, self._drops, durable=cfg.durable)
        if not self._spool.is_empty:
            log.info(
                "event spool holds %d bytes from an earlier run; replaying first", self._spool.pending_bytes
            )
            self._move_queue_to_spool()  # events queued before start() are newer than the spool
        self._metrics.spool_bytes.set(self._spool.total_bytes)
        self._metrics.broker_up.set(0)
        self._state = _State.RUNNING
        self._task = asyncio.create_task(self._run(), name="kafka-publisher-sender")
        self._task.add_done_callback(self._on_sender_done)

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a flush budget, like grpc's stop(grace))
        """Flush queued events to Kafka, or to the spool if that fails within `timeout`. Idempotent."""
        if self._state is _State.NEW:
            self._state = _State.STOPPED
            self._stopped.set()
            return
        if self._state is not _State.RUNNING:
            await self._stopped.wait()
            return
        self._state = _State.STOPPING
        deadline = time.monotonic() + timeout
        self._stop_requested.set()
        self._queue.wake()  # out of its wait or linger
        await self._await_sender(timeout)
        self._to_spool(self._drain_queue())  # whatever the sender could not flush
        await self._disconnect(max(deadline - time.monotonic(), 0.5))
        assert self._spool is not None
        self._metrics.spool_bytes.set(self._spool.total_bytes)
        self._spool.close()
        self._drops.flush()
        self._state = _State.STOPPED
        self._stopped.set()

    async def _await_sender(self, budget_s: float) -> None:
        assert self._task is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._task), budget_s)
        except TimeoutError:
            self._task.cancel()  # the sender spools its in-flight batch on cancellation
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except Exception:  # already logged by _on_sender_done; stop() must still finish
            pass

    def _on_sender_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # A crashed sender must not strand events in memory: route everything to the spool.
        log.error("event sender crashed; spooling events until restart", exc_info=task.exception())
        self._spool_mode = True

    # -- the request path --------------------------------------------------------------------

    def publish(self, event: TelemetryEvent) -> None:
        """Hand an event over. Never blocks, never awaits, never raises. With `durable`, the event
        is in the spool (the OS's page cache) when this returns."""
        try:
            state = self._state
            if state is _State.STOPPED:
                self._drops.drop("closed")
                return
            record = self._encode(event)
            if record is None:
                return
            if state is _State.RUNNING and not self._spool_mode:
                # The common case, first: this runs three times per request.
                pending = Pending(record)
                if self._queue.put(pending):
                    assert self._log is not None
                    self._log.queued(pending, event.body)  # on disk now, or held for its call
                    return
                # Full. From now on every event goes through the spool, behind what it already holds.
                self._spool_mode = True
                self._to_spool([pending])
            elif state is _State.NEW:  # the spool is not open yet (nothing publishes this early)
                if not self._queue.put(Pending(record)):
                    self._drops.drop("closed")
            else:  # spool mode, or stopping: behind what the spool holds
                self._to_spool([Pending(record)])
        except Exception:  # the request path must not fail because of telemetry
            log.exception(
                "unexpected error publishing a %s event of %s", event.kind, event.context.request_id
            )
            self._drops.drop("encode_error")

    # -- the sender task ---------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stop_requested.is_set():
            try:
                if self._producer_lost():
                    await self._disconnect(1.0)  # and reconnect now, checking the topic again
                if self._producer is None and not await self._connect():
                    await self._sleep_until_probe()
                elif self._spool_mode and not self._queue:
                    await self._replay_batch()
                else:
                    await self._send_queue_batch()
            except Exception:  # a bug, not a broker failure: keep events safe and keep going
                log.exception("event sender error; spooling and retrying")
                self._enter_spool_mode(())
                await self._back_off()
        await self._final_flush()

    async def _connect(self) -> bool:
        producer = AIOKafkaProducer(**self._producer_kwargs())
        guard = ProducerGuard(producer, self._wake_sender)  # before start(): it must see every connection
        try:
            async with asyncio.timeout(self._config.request_timeout_ms / 1000):
                await producer.start()
                await require_topic(producer, self._config.topic)
        except _BROKER_ERRORS as exc:
            await _close_quietly(producer, 1.0)
            self._on_broker_failure(exc, "cannot reach the event broker")
            self._enter_spool_mode(())  # degraded: events go to disk until a probe succeeds
            return False
        self._producer, self._guard = producer, guard
        self._metrics.broker_up.set(1)
        return True

    def _producer_lost(self) -> bool:
        """The producer lost a connection since it checked the topic: it must not send again."""
        return self._producer is not None and self._guard is not None and self._guard.lost

    def _wake_sender(self) -> None:
        """Called by the guard: a sender idle on an empty queue, or lingering, must replace the
        producer now, so that an outage is noticed (and a restarted broker's topic checked)
        before new events are sent."""
        self._queue.wake()

    def _producer_kwargs(self) -> dict[str, Any]:
        cfg = self._config
        return {
            "bootstrap_servers": cfg.bootstrap_servers,
            "client_id": cfg.client_id,
            "acks": "all",
            "enable_idempotence": cfg.enable_idempotence,
            "compression_type": None if cfg.compression_type == "none" else cfg.compression_type,
            "linger_ms": 0,  # our batches are closed when submitted; the sender does the lingering
            "max_batch_size": cfg.max_batch_bytes,
            "max_request_size": cfg.max_request_bytes,
            "request_timeout_ms": cfg.request_timeout_ms,
            **cfg.security.client_kwargs(),
        }

    async def _back_off(self) -> None:
        """Drop the connection and wait a probe interval: a broker that accepts connections but
        rejects every batch (ACLs, say) must not turn the sender into a busy loop."""
        await self._disconnect(1.0)
        await self._sleep_until_probe()

    async def _sleep_until_probe(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_requested.wait(), self._config.probe_interval_s)

    async def _send_queue_batch(self) -> None:
        await self._gather_batch()
        if self._producer_lost() or (self._stop_requested.is_set() and not self._queue):
            return  # the loop replaces the producer (or stops) first; the events wait in the queue
        assert self._log is not None
        self._log.write_held()  # every record the sender takes has its place in the log
        pending = self._queue.take(self._config.send_batch_max)
        self._metrics.queue_depth.set(len(self._queue))
        delivered = not pending or await self._deliver_or_spool_on_cancel(pending)
        if delivered:
            self._trim(pending)
        else:
            self._enter_spool_mode(pending)
            await self._back_off()

    async def _gather_batch(self) -> None:
        """Wait for an event, then linger for a full batch, taking nothing out of the queue yet.
        A wake-up (stop, or a lost producer) ends either wait at once. In spool mode the queue
        only drains (new events go to the spool), so there is nothing to linger for."""
        await self._queue.wait()
        linger_s = self._config.linger_ms / 1000
        if self._queue and linger_s > 0 and not self._spool_mode and not self._stop_requested.is_set():
            await self._queue.wait(at_least=self._config.send_batch_max, max_wait_s=linger_s)

    async def _replay_batch(self) -> None:
        assert self._spool is not None
        entries = self._spool.read_batch(self._config.send_batch_max)
        if not entries:
            # Spool and queue are both empty: nothing older is waiting, new events may use memory.
            self._spool_mode = False
            return
        if await self._deliver([record for _, record in entries]):
            self._spool.ack(entries[-1][0])
            self._metrics.replayed.inc(len(entries))
            self._metrics.spool_bytes.set(self._spool.total_bytes)
        else:
            await self._back_off()  # the records stay in the spool, unacknowledged

    async def _deliver_or_spool_on_cancel(self, pending: Sequence[Pending]) -> bool:
        try:
            return await self._deliver([entry.record for entry in pending])
        except asyncio.CancelledError:
            self._to_spool(pending)  # stop() ran out of time: keep the batch on disk
            raise

    def _trim(self, delivered: Sequence[Pending]) -> None:
        assert self._log is not None
        self._log.trim(delivered)

    async def _deliver(self, records: Sequence[SpoolRecord]) -> bool:
        """Send and await acks; False on a broker failure (the caller keeps the records)."""
        assert self._producer is not None
        try:
            async with asyncio.timeout(self._config.delivery_timeout_s):
                sent = await self._send_all(self._producer, records)
                results = await asyncio.gather(*(batch.future for batch in sent), return_exceptions=True)
        except _BROKER_ERRORS as exc:
            self._on_broker_failure(exc, "event delivery failed")
            return False
        except Exception as exc:  # not a broker failure but a bug; still, keep the records
            log.exception("unexpected error delivering events")
            self._metrics.count_error(exc)
            return False
        failure: BaseException | None = None
        acked: collections.Counter[str] = collections.Counter()
        for batch, result in zip(sent, results, strict=True):
            if isinstance(result, _TOO_LARGE):  # the broker's limit is lower than ours
                self._drops.drop("too_large", len(batch.records))
            elif isinstance(result, BaseException):
                failure = failure or result
            else:
                acked.update(event_codec.kind_of(record.headers) for record in batch.records)
        for kind, count in acked.items():  # one inc per kind, not per event: this is the hot loop
            self._metrics.published.labels(type=kind).inc(count)
        if failure is not None:
            self._on_broker_failure(failure, "event delivery failed")
            return False
        self._on_delivered()
        return True

    async def _send_all(self, producer: AIOKafkaProducer, records: Sequence[SpoolRecord]) -> list[SentBatch]:
        # A record over max_request_bytes is dropped: retrying it would wedge the spool.
        return await send_batches(
            producer, records, self._config.max_request_bytes, lambda _: self._drops.drop("too_large")
        )

    async def _final_flush(self) -> None:
        """On stop: send what is still queued (connecting first if we never tried); else spool it."""
        pending = self._drain_queue()
        if not pending:
            return
        delivered = False
        try:
            if self._producer_lost():
                await self._disconnect(1.0)
            if self._producer is None and not self._spool_mode:
                await self._connect()
            records = [entry.record for entry in pending]
            delivered = self._producer is not None and await self._deliver(records)
            if delivered:
                self._trim(pending)
        finally:  # not delivered, or cancelled because stop() ran out of time: keep them on disk
            if not delivered:
                self._to_spool(pending)

    # -- failure handling and the spool -------------------------------------------------------

    def _on_broker_failure(self, exc: BaseException, what: str) -> None:
        self._metrics.count_error(exc)
        if self._healthy:  # logged on the edge; the metric counts every failure
            detail = str(exc) if str(exc).startswith(type(exc).__name__) else f"{type(exc).__name__}: {exc}"
            log.warning("%s (%s); spooling events to disk until it recovers", what, detail)
        self._healthy = False

    def _on_delivered(self) -> None:
        if not self._healthy:
            assert self._spool is not None
            log.info("event broker recovered; %d spooled bytes left to replay", self._spool.pending_bytes)
        self._healthy = True

    def _enter_spool_mode(self, failed: Sequence[Pending]) -> None:
        """Spool a failed batch and everything queued behind it, in order, without awaiting."""
        self._to_spool(failed)
        self._move_queue_to_spool()

    def _move_queue_to_spool(self) -> None:
        self._spool_mode = True
        self._to_spool(self._drain_queue())

    def _drain_queue(self) -> list[Pending]:
        assert self._log is not None
        self._log.write_held()
        pending = self._queue.take_all()
        self._metrics.queue_depth.set(0)
        return pending

    def _to_spool(self, pending: Sequence[Pending]) -> None:
        """Leave these events to a spool replay (WriteAheadLog.keep), counting what it holds."""
        if not pending:
            return
        assert self._spool is not None and self._log is not None
        spooled = self._log.keep(pending)
        if spooled:
            self._metrics.spooled.inc(spooled)
        self._metrics.spool_bytes.set(self._spool.total_bytes)

    def _encode(self, event: TelemetryEvent) -> SpoolRecord | None:
        try:
            key, value, headers = self._encoder.encode(self._content.apply(event))
        except Exception:  # a bug in one event must not take the others down with it
            log.exception("cannot encode a %s event of request %s", event.kind, event.context.request_id)
            self._drops.drop("encode_error")
            return None
        return SpoolRecord(self._config.topic, key, value, headers)

    async def _disconnect(self, budget_s: float) -> None:
        producer, self._producer, self._guard = self._producer, None, None
        self._metrics.broker_up.set(0)
        if producer is not None:
            await _close_quietly(producer, budget_s)


async def _close_quietly(producer: AIOKafkaProducer, budget_s: float) -> None:
    _abandon_pending_batches(producer)
    try:
        async with asyncio.timeout(budget_s):  # a hung close must not hang the publisher
            await producer.stop()
    except Exception as exc:  # closing a broken client may fail in many ways; none matter now
        log.debug("closing the Kafka producer failed: %r", exc)


def _abandon_pending_batches(producer: AIOKafkaProducer) -> None:
    """Fail the producer's unacknowledged batches so that its stop() returns at once.

    aiokafka has no abort(): stop() waits until in-flight batches are acknowledged or expire
    (request_timeout_ms), and cancelling that wait leaves its sender task running. We only
    disconnect once every record the producer holds is back in our hands (spooled, or still
    unacknowledged in the spool), so failing them loses nothing. This uses aiokafka internals
    (pinned at 0.14.0); without them we fall back to the slow, bounded stop().
    """
    fail_held_batches(producer, KafkaConnectionError("publisher disconnected"))
