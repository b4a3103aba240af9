"""ForwardingPublisher: the engine's EventSink that publishes from a child process.

Why a second process. A router's throughput is bounded by its one event loop, and publishing
in that loop (KafkaPublisher) cost it 7-11% of its CPU per request: encoding every event to
JSON, then aiokafka's batching, compression and CRCs, all pure Python or GIL-held. Here the
router only queues events (the same never-blocking publish) and, once a round, packs them into
one marshal frame (event_frames.py) and writes it to a pipe; a forwarder process (forwarder.py)
runs the ordinary KafkaPublisher on another core. The router's share fell to 2-5%; with the
router alone on a core, its throughput cost fell from ~8% to ~3% (bench/README.md, "What
telemetry costs"). The price is more CPU in all: packing and unpacking cost about 7 us an event
on top of the publisher's ~13, so where every core is busy anyway (as many `serve --workers`
as cores, or a CPU limit of one core), `events.forwarder: false` costs the machine less.

No loss. The router keeps every frame it sent until the forwarder reports it settled
(acknowledged by the broker, spooled to disk, or dropped and counted). If the forwarder dies,
the router starts a new one, with a growing pause between attempts, and sends it the unsettled
frames again, in order; their events keep their ids, so the copies that may already be in Kafka
are duplicates consumers drop. At stop, the router sends what it holds, tells the forwarder to
flush or spool within the budget, and publishes anything the forwarder did not settle (it died,
or ran out of time) with an in-process KafkaPublisher, which spools what it cannot send.

A forwarder that cannot be kept alive (more than `RestartPolicy.max_attempts` starts within
`window_s`: it crash-loops, say on a frame it cannot read, or cannot start at all) is given up:
the router publishes in-process from then on, as with `events.forwarder: false`, after handing
the unsettled frames and the queue to that publisher. It costs the router's throughput a few
percent more, and loses nothing; the log says so, and `forwarder_up` stays 0 (an alert).

Bounds. The queue holds `queue_max` events, and frames sent but not settled hold at most another
`queue_max` (at stop, the last frames go regardless): when the forwarder stops acknowledging, the
sender waits and the queue fills. A full queue drops events (counted as `forwarder_behind` and
logged): that happens only when the forwarder is down or cannot keep up for as long as the
queue lasts (10,000 events by default), since a forwarder spools to disk rather than fall behind
a slow broker.

Metrics. The forwarder reports its publisher's counters and gauges; they are added to this
process's metrics, so /metrics shows the same `llmrouter_events_*` series in either mode, plus
`llmrouter_events_forwarder_up` and `_restarts_total`. `queue_depth` counts every event the
router holds: queued, and sent but not settled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import enum
import itertools
import logging
import marshal
import os
import sys
import time
from collections.abc import Sequence

from router_service.telemetry import event_codec, event_frames
from router_service.telemetry import forwarder_wire as wire
from router_service.telemetry.event_queue import EventQueue
from router_service.telemetry.events import TelemetryEvent
from router_service.telemetry.publisher import KafkaPublisher
from router_service.telemetry.publisher_config import PublisherConfig
from router_service.telemetry.publisher_metrics import DropReporter, PublisherMetrics, default_metrics

log = logging.getLogger("router_service.telemetry.publisher")

FORWARDER_COMMAND = (sys.executable, "-m", "router_service.telemetry.forwarder")
START_TIMEOUT_S = 30.0  # a forwarder imports aiokafka and opens the spool; 0.3 s here


@dataclasses.dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How hard the router tries to keep a forwarder before it publishes in-process instead."""

    delays_s: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # pauses between failed starts
    max_attempts: int = 5  # starts within window_s; one more and publishing moves in-process
    window_s: float = 60.0


class ForwarderError(Exception):
    """The forwarder process could not be started."""


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclasses.dataclass(slots=True)
class _Frame:
    seq: int
    message: bytes  # as written to the forwarder, header included
    count: int  # events


class ForwardingPublisher:
    """EventSink that hands events to a forwarder process, which publishes them to Kafka."""

    def __init__(
        self,
        config: PublisherConfig,
        *,
        metrics: PublisherMetrics | None = None,
        command: Sequence[str] = FORWARDER_COMMAND,
        restarts: RestartPolicy = RestartPolicy(),
    ) -> None:
        # The events' source is this router, not the forwarder: fix the instance name here.
        instance = config.router_instance or event_codec.default_router_instance()
        self._config = dataclasses.replace(config, router_instance=instance)
        self._metrics = metrics or default_metrics()
        self._command = tuple(command)
        self._restarts = restarts
        self._starts: collections.deque[float] = collections.deque()  # restart attempts in the window
        self._inline: KafkaPublisher | None = None  # set once the forwarder is given up
        self._switching = asyncio.Lock()  # held while publishing moves in-process
        self._drops = DropReporter(self._metrics)
        self._queue: EventQueue[TelemetryEvent] = EventQueue(config.queue_max)
        self._state = _State.NEW
        self._unacked: collections.deque[_Frame] = collections.deque()
        self._unacked_events = 0
        self._seq = 0
        self._id_seed = int.from_bytes(os.urandom(16))  # see event_frames.py
        self._process: asyncio.subprocess.Process | None = None
        self._ready = asyncio.Event()  # a forwarder runs and has every unacknowledged frame
        self._acked = asyncio.Event()  # a report freed room for more frames
        self._stop_requested = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the forwarder; raises ForwarderError if it cannot start (a bad spool dir, say)."""
        if self._state is not _State.NEW:
            raise RuntimeError(f"ForwardingPublisher cannot start when {self._state.value}")
        self._process = await self._spawn()
        self._on_ready()
        self._state = _State.RUNNING
        self._supervisor = asyncio.create_task(self._supervise(), name="event-forwarder-supervisor")
        self._sender = asyncio.create_task(self._send_rounds(), name="event-forwarder-sender")

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (a flush budget, like KafkaPublisher.stop)
        """Hand everything to the forwarder and let it flush or spool within `timeout`; publish
        here whatever it did not settle. Idempotent."""
        if self._state is _State.NEW:
            self._state = _State.STOPPED
            self._stopped.set()
            return
        if self._state is not _State.RUNNING:
            await self._stopped.wait()
            return
        self._state = _State.STOPPING  # publish() still queues: the events go with the last frames
        deadline = time.monotonic() + timeout
        self._stop_requested.set()  # no fallback to in-process publishing starts from here on...
        async with self._switching:  # ...and one under way completes first
            pass
        if self._inline is not None:  # the forwarder was given up: the in-process publisher flushes
            await self._inline.stop(max(deadline - time.monotonic(), 0.0))
            self._state = _State.STOPPED
            self._drops.flush()
            self._stopped.set()
            return
        self._queue.wake()
        self._acked.set()
        assert self._sender is not None and self._supervisor is not None
        await _finish(self._sender, deadline - time.monotonic())  # the last frames are written
        stopping = self._process
        await self._stop_forwarder(deadline)
        await _finish(self._supervisor, 0.1)
        if self._process is not stopping:  # a restart raced with stop: that one gets no STOP
            await _kill(self._process)
        leftovers = [event for frame in self._unacked for event in self._events_of(frame)]
        leftovers += self._queue.take_all()
        self._unacked.clear()
        self._unacked_events = 0
        self._metrics.queue_depth.set(0)
        self._state = _State.STOPPED  # from here on publish() drops, visibly: nothing would send it
        if leftovers:
            log.warning("the event forwarder left %d events unsettled; publishing them here", len(leftovers))
            await self._publish_here(leftovers, max(deadline - time.monotonic(), 1.0))
        self._drops.flush()
        self._stopped.set()

    def _events_of(self, frame: _Frame) -> list[TelemetryEvent]:
        """A frame's events, with the ids a forwarder gives them."""
        return event_frames.unpack(frame.message[wire.HEADER_SIZE :], self._id_seed, frame.seq)

    async def _stop_forwarder(self, deadline: float) -> None:
        """Ask the forwarder to flush and exit; kill it when the budget runs out."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        budget = deadline - time.monotonic()
        try:
            process.stdin.write(wire.message(wire.STOP, 0, marshal.dumps(max(budget - 1.0, 0.5))))
            process.stdin.close()
        except ConnectionError:
            pass  # it died: the supervisor saw it
        try:
            async with asyncio.timeout(max(budget, 0.5)):
                await self._supervisor_reads_to_the_end(process)
        except TimeoutError:
            log.error("the event forwarder did not stop in time; killing it")
            await _kill(process)

    async def _supervisor_reads_to_the_end(self, process: asyncio.subprocess.Process) -> None:
        await process.wait()
        assert self._supervisor is not None
        await asyncio.shield(self._supervisor)  # it applies the last report, then returns

    async def _publish_here(self, events: Sequence[TelemetryEvent], budget_s: float) -> None:
        publisher = KafkaPublisher(self._config, metrics=self._metrics)
        try:
            await publisher.start()
        except Exception:
            log.exception("cannot open the event spool to save %d events", len(events))
            self._drops.drop("spool_error", len(events))
            return
        for event in events:
            publisher.publish(event)
        await publisher.stop(budget_s)

    # -- the request path --------------------------------------------------------------------

    def publish(self, event: TelemetryEvent) -> None:
        """Hand an event over. Never blocks, never awaits, never raises."""
        if self._state is _State.STOPPED:
            self._drops.drop("closed")
        elif self._inline is not None:
            self._inline.publish(event)
        elif not self._queue.put(event):
            self._drops.drop("forwarder_behind")

    # -- the sender task ---------------------------------------------------------------------

    async def _send_rounds(self) -> None:
        cfg = self._config
        linger_s = cfg.linger_ms / 1000
        while not self._stop_requested.is_set():
            await self._queue.wait()
            if self._queue and linger_s > 0 and not self._stop_requested.is_set():
                await self._queue.wait(at_least=cfg.send_batch_max, max_wait_s=linger_s)
            await self._room()
            if self._ready.is_set() and self._queue:  # _room() left room for at least one event
                await self._send(
                    self._queue.take(min(cfg.send_batch_max, cfg.queue_max - self._unacked_events))
                )
        while self._queue and self._ready.is_set():  # stop: hand over the rest, ignoring the bound
            await self._send(self._queue.take(cfg.send_batch_max))

    async def _room(self) -> None:
        """Until a forwarder runs and the unsettled frames leave room, or stop is requested."""
        while not self._stop_requested.is_set():
            if self._ready.is_set() and self._unacked_events < self._config.queue_max:
                return
            self._acked.clear()
            waits = [asyncio.ensure_future(self._acked.wait()), asyncio.ensure_future(self._ready.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    async def _send(self, events: list[TelemetryEvent]) -> None:
        frame = self._pack(events)
        if frame is None:
            return
        self._unacked.append(frame)  # before writing: if the forwarder dies now, it is sent again
        self._unacked_events += frame.count
        self._metrics.queue_depth.set(len(self._queue) + self._unacked_events)
        process = self._process
        assert process is not None and process.stdin is not None
        try:
            process.stdin.write(frame.message)
            await process.stdin.drain()
        except ConnectionError:  # it died; the supervisor restarts it and sends the frame again
            if self._process is process:  # (unless it already has: then the new one is ready)
                self._ready.clear()

    def _pack(self, events: list[TelemetryEvent]) -> _Frame | None:
        try:
            payload = event_frames.pack(events)
        except Exception:  # a bug in one event must not take the round down with it
            events = [event for event in events if self._packs(event)]
            if not events:
                return None
            payload = event_frames.pack(events)
        self._seq += 1
        return _Frame(self._seq, wire.message(wire.EVENTS, self._seq, payload), len(events))

    def _packs(self, event: TelemetryEvent) -> bool:
        try:
            event_frames.pack([event])
        except Exception:
            log.exception("cannot pack a %s event of request %s", event.kind, event.context.request_id)
            self._drops.drop("encode_error")
            return False
        return True

    # -- the forwarder process ----------------------------------------------------------------

    async def _spawn(self) -> asyncio.subprocess.Process:
        """A started forwarder (its publisher running), or ForwarderError."""
        process = await asyncio.create_subprocess_exec(
            *self._command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C is for the router, which stops it in order
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(wire.config_message(self._config, self._id_seed))
            async with asyncio.timeout(START_TIMEOUT_S):
                first = await wire.read_message(process.stdout)
        except (ConnectionError, TimeoutError) as exc:
            first, reason = None, f"{type(exc).__name__}: {exc}"
        else:
            reason = "it exited" if first is None else first[2].decode(errors="replace")
        if first is not None and first[0] == wire.REPORT:
            self._apply_report(first[1], first[2])
            return process
        await _kill(process)
        raise ForwarderError(f"the event forwarder did not start: {reason}")

    def _on_ready(self) -> None:
        self._ready.set()
        self._metrics.forwarder_up.set(1)

    async def _supervise(self) -> None:
        """Read the forwarder's reports; when it dies, start another and resend what it held."""
        while True:
            process = self._process
            assert process is not None and process.stdout is not None
            while (received := await wire.read_message(process.stdout)) is not None:
                kind, seq, payload = received
                if kind == wire.REPORT:
                    self._apply_report(seq, payload)
            await process.wait()
            self._ready.clear()
            self._metrics.forwarder_up.set(0)
            self._metrics.broker_up.set(0)
            if self._stop_requested.is_set():
                return
            log.error(
                "the event forwarder exited (code %s) holding %d unsettled events; starting another",
                process.returncode,
                self._unacked_events,
            )
            self._metrics.forwarder_restarts.inc()
            if not await self._restart():
                return

    async def _restart(self) -> bool:
        """A new forwarder holding every unsettled frame: True. False when stop was requested, or
        when the forwarder was given up for in-process publishing (`_fall_back`)."""
        delays = self._restarts.delays_s
        for attempt in itertools.count():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delays[min(attempt, len(delays) - 1)])
            if self._stop_requested.is_set():
                return False
            if self._too_many_starts() and await self._fall_back():
                return False
            try:
                process = await self._spawn()
            except (ForwarderError, OSError) as exc:
                log.error("%s; trying again", exc)
                continue
            assert process.stdin is not None
            try:
                for frame in self._unacked:
                    process.stdin.write(frame.message)
                await process.stdin.drain()
            except ConnectionError:
                pass  # it died already: the supervisor loop notices
            self._process = process
            self._on_ready()
            return True
        return False

    def _too_many_starts(self) -> bool:
        now = time.monotonic()
        starts = self._starts
        starts.append(now)
        while starts[0] < now - self._restarts.window_s:
            starts.popleft()
        return len(starts) > self._restarts.max_attempts

    async def _fall_back(self) -> bool:
        """Publish in this process from now on, starting with everything the router holds. False
        when stop() has begun (it publishes the leftovers itself), or when in-process publishing
        cannot start either (then the forwarder is tried again)."""
        async with self._switching:
            if self._stop_requested.is_set():
                return False
            publisher = KafkaPublisher(self._config, metrics=self._metrics)
            try:
                await publisher.start()  # the dead forwarder's spool lock is free: the spool is ours
            except Exception:
                log.exception(
                    "the event forwarder keeps failing and publishing in the router process cannot"
                    " start either; starting the forwarder again"
                )
                return False
            log.error(
                "the event forwarder failed %d times in %.0f s; publishing events in the router"
                " process from now on (as with events.forwarder: false)",
                len(self._starts),
                self._restarts.window_s,
            )
            await self._hand_over(publisher)
            return True

    async def _hand_over(self, publisher: KafkaPublisher) -> None:
        """Stop sending frames; give `publisher` the unsettled frames' events, then the queue's."""
        assert self._sender is not None
        self._sender.cancel()  # it waits for a forwarder that will not come; it holds no taken event
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
        held = [event for frame in self._unacked for event in self._events_of_or_drop(frame)]
        held += self._queue.take_all()
        self._unacked.clear()
        self._unacked_events = 0
        self._inline = publisher  # no await since take_all: publish() now goes to it, none in between
        for event in held:
            publisher.publish(event)

    def _events_of_or_drop(self, frame: _Frame) -> list[TelemetryEvent]:
        try:
            return self._events_of(frame)
        except Exception:  # a frame this process cannot read either: counted, never silent
            log.exception("cannot read back a frame of %d events", frame.count)
            self._drops.drop("encode_error", frame.count)
            return []

    def _apply_report(self, acked_seq: int, payload: bytes) -> None:
        unacked = self._unacked
        freed = 0
        while unacked and unacked[0].seq <= acked_seq:
            freed += unacked.popleft().count
        if freed:
            self._unacked_events -= freed
            self._acked.set()
        self._metrics.apply_forwarded(*wire.report_of(payload))
        self._metrics.queue_depth.set(len(self._queue) + self._unacked_events)


async def _finish(task: asyncio.Task[None], budget_s: float) -> None:
    """Wait for a task up to the budget, then cancel it; its errors are logged, not raised."""
    try:
        await asyncio.wait_for(asyncio.shield(task), max(budget_s, 0.0))
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except Exception:
        log.exception("event forwarder task failed")


async def _kill(process: asyncio.subprocess.Process | None) -> None:
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()
