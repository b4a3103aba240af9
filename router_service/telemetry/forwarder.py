"""The event forwarder process: a KafkaPublisher fed by its router through a pipe.

`python -m router_service.telemetry.forwarder` is started by the router's ForwardingPublisher
(forwarding_publisher.py, which explains why) and speaks forwarder_wire.py on stdin and stdout. It
runs the ordinary KafkaPublisher, so batching, compression, the disk spool, replay and every
failure rule are the same as in the router's own process. What it adds:

- It reports which frames are settled (acknowledged by the broker, spooled, or dropped and
  counted). The router keeps every frame until then and sends the unsettled ones again to the
  next forwarder if this one dies: at-least-once, like the rest of the pipeline.
- It reports its publisher's metrics, which live on a private registry, as increments the router
  adds to its own (the router's /metrics is the one that is scraped).

It ignores SIGINT and SIGTERM: a Ctrl-C or a service manager signals the whole process group, and
the forwarder must outlive its router's shutdown to flush what the router hands it last. It stops
when the router says STOP, or when its stdin closes (the router died): then it flushes or spools
what it holds and exits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import marshal
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from prometheus_client import CollectorRegistry

from router_service.telemetry import event_frames
from router_service.telemetry import forwarder_wire as wire
from router_service.telemetry.publisher import KafkaPublisher
from router_service.telemetry.publisher_metrics import MetricValues, PublisherMetrics, counter_increments

log = logging.getLogger("router_service.telemetry.forwarder")

# How often settled frames and metrics go back to the router. A report costs a scan of the
# publisher's metrics; at 0.05 s that was a few us of every event at 1500 events/s.
REPORT_INTERVAL_S = 0.2
STOP_TIMEOUT_S = 10.0  # the flush budget when stdin closes without a STOP


class _Reporter:
    """Turns the publisher's settlement marks into frame acknowledgements, with metrics."""

    def __init__(
        self, publisher: KafkaPublisher, metrics: PublisherMetrics, out: asyncio.StreamWriter
    ) -> None:
        self._publisher = publisher
        self._metrics = metrics
        self._out = out
        self._frames: collections.deque[tuple[int, int]] = collections.deque()  # (seq, accepted mark)
        self._acked = 0
        self._sent_acked = -1
        self._totals: MetricValues = {}
        self._gauges: MetricValues = {}

    def frame_published(self, seq: int) -> None:
        self._frames.append((seq, self._publisher.accepted_mark()))

    def report(self) -> None:
        """Send a report if anything changed since the last one."""
        settled = self._publisher.settled_mark()
        frames = self._frames
        while frames and frames[0][1] <= settled:
            self._acked = frames.popleft()[0]
        totals, gauges = self._metrics.forwarded_values()
        increments = counter_increments(totals, self._totals)
        if self._acked == self._sent_acked and not increments and gauges == self._gauges:
            return
        if self._out.is_closing():  # the router is gone: nobody to tell (uvloop raises on a write)
            return
        self._out.write(wire.report_message(self._acked, increments, gauges))
        self._sent_acked, self._totals, self._gauges = self._acked, totals, gauges

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(REPORT_INTERVAL_S)
                self.report()
                await self._out.drain()
        except ConnectionError:  # the router is gone; what it sent is still flushed or spooled
            log.warning("the router stopped reading reports")


async def serve(reader: asyncio.StreamReader, out: asyncio.StreamWriter) -> int:
    first = await wire.read_message(reader)
    if first is None or first[0] != wire.CONFIG:
        log.error("the router sent no configuration; exiting")
        return 2
    config, id_seed = wire.config_of(first[2])
    metrics = PublisherMetrics(CollectorRegistry())
    # The router's frames are its lingered rounds already: send each one as it comes.
    publisher = KafkaPublisher(dataclasses.replace(config, linger_ms=0), metrics=metrics)
    try:
        await publisher.start()
    except Exception as exc:  # e.g. an unusable spool directory: the router's start() fails with it
        out.write(wire.message(wire.FAILED, 0, f"{type(exc).__name__}: {exc}".encode()))
        await out.drain()
        return 1
    reporter = _Reporter(publisher, metrics, out)
    reporter.report()  # the first report: started
    reporting = asyncio.create_task(reporter.run(), name="forwarder-reports")
    stop_timeout = STOP_TIMEOUT_S
    while (received := await wire.read_message(reader)) is not None:
        kind, seq, payload = received
        if kind == wire.EVENTS:
            _publish_frame(publisher, payload, id_seed, seq)
            reporter.frame_published(seq)
        elif kind == wire.STOP:
            stop_timeout = marshal.loads(payload)
            break
    reporting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reporting
    await publisher.stop(stop_timeout)
    reporter.report()  # stop() settled everything: this acknowledges the last frame
    with contextlib.suppress(ConnectionError):
        await out.drain()
    return 0


def _publish_frame(publisher: KafkaPublisher, frame: bytes, id_seed: int, seq: int) -> None:
    try:
        events = event_frames.unpack(frame, id_seed, seq)
    except Exception:  # a bug; acknowledging the frame keeps it from killing every forwarder
        log.exception("cannot unpack a frame of events (%d bytes); its events are lost", len(frame))
        return
    for event in events:
        publisher.publish(event)


async def _pipes() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """stdin and stdout as streams. stdout is the protocol's alone: anything printed goes to stderr."""
    loop = asyncio.get_running_loop()
    protocol_out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0)
    )
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, protocol_out)
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


async def _main() -> int:
    reader, out = await _pipes()
    return await serve(reader, out)


def _run(main: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop  # the router's loop too (app._run): less loop overhead per round
    except ImportError:  # pragma: no cover - uvloop is a pinned dependency on Linux
        return asyncio.run(main)
    return uvloop.run(main)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(  # the router's LOG_LEVEL and format (app.configure_logging), on its stderr
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(process)d event-forwarder %(name)s: %(message)s",
        stream=sys.stderr,
    )
    sys.exit(_run(_main()))


if __name__ == "__main__":
    main()
