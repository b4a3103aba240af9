"""The pipe protocol between the router and its event forwarder process (see forwarder.py).

Each message is a 13-byte header (type, sequence number, payload length) and a payload. The
router writes to the forwarder's stdin:

- CONFIG: the PublisherConfig, as a marshal'd dict, and the seed of event ids (event_frames.py),
  once, first. It carries the broker password, which is why it goes through the pipe and not
  the command line (which `ps` shows).
- EVENTS: one frame of events (event_frames.py), numbered from 1 by the router.
- STOP: how many seconds the forwarder has to flush or spool what it holds, then it exits.

The forwarder writes to its stdout:

- REPORT: the highest EVENTS number whose events are all settled (acknowledged by the broker,
  spooled or dropped and counted), the publisher's counter increments since the last report and
  its gauges. The first report (number 0) says the publisher started.
- FAILED: why the publisher could not start (a bad spool directory, say); the forwarder exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import marshal
import struct
from typing import Any

from router_service.telemetry.kafka_client import KafkaSecurity
from router_service.telemetry.publisher_config import PublisherConfig
from router_service.telemetry.publisher_metrics import MetricValues

CONFIG, EVENTS, STOP, REPORT, FAILED = b"C", b"E", b"S", b"R", b"F"
_HEADER = struct.Struct(">cQI")
HEADER_SIZE = _HEADER.size


def message(kind: bytes, seq: int, payload: bytes) -> bytes:
    return _HEADER.pack(kind, seq, len(payload)) + payload


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, int, bytes] | None:
    """The next message, or None at the end of the stream (the other side closed or died)."""
    try:
        kind, seq, length = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        return kind, seq, await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None


def config_message(config: PublisherConfig, id_seed: int) -> bytes:
    return message(CONFIG, 0, marshal.dumps((dataclasses.asdict(config), id_seed)))


def config_of(payload: bytes) -> tuple[PublisherConfig, int]:
    """The publisher's config and the router's seed for event ids (event_frames.unpack)."""
    fields: dict[str, Any]
    fields, id_seed = marshal.loads(payload)
    fields["security"] = KafkaSecurity(**fields["security"])
    fields["redact_pii"] = tuple(fields["redact_pii"])
    fields["redact_patterns"] = tuple(fields["redact_patterns"])
    return PublisherConfig(**fields), id_seed


def report_message(acked_seq: int, counter_increments: MetricValues, gauges: MetricValues) -> bytes:
    return message(REPORT, acked_seq, marshal.dumps((counter_increments, gauges)))


def report_of(payload: bytes) -> tuple[MetricValues, MetricValues]:
    counter_increments, gauges = marshal.loads(payload)
    return counter_increments, gauges
