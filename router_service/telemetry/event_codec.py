"""Turns TelemetryEvents into Kafka records: router.v1.Event values plus CloudEvents headers.

Record layout (the contract data teams read; see protos/router/v1/events.proto):
- key: the UTF-8 request_id. Kafka orders records only within a partition, and the default
  partitioner hashes the key, so every event of one request lands in one partition in publish
  order (decision, attempts, completion/error, later feedback).
- value: `router.v1.Event` as compact proto3 JSON (the default: `kcat -C ... | jq` just works;
  every field is printed, zero values included, so schema inference in Spark/Flink sees a stable
  shape; int64 fields are JSON strings as the mapping requires) or as protobuf binary.
- headers: CloudEvents Kafka binding, binary mode: `ce_specversion`, `ce_id` (= event_id),
  `ce_source`, `ce_type` (`com.llmrouter.<kind>.v1`), `ce_time` (RFC 3339, UTC), `ce_dataschema`
  (the protobuf type URL) and `content-type`. Consumers can route or filter on `ce_type` without
  decoding the value, and deduplicate on (`ce_source`, `ce_id`).
"""

from __future__ import annotations

import functools
import os
import socket
from json.encoder import encode_basestring
from typing import Literal

from router_contract._gen.router.v1 import events_pb2
from router_contract.event_records import (
    CONTENT_TYPES,
    DATASCHEMA,
    SOURCE_PREFIX,
    SPEC_VERSION,
    ce_type,
    decode,
    kind_of,
)
from router_service.telemetry import wire_values as wv
from router_service.telemetry.event_json import event_to_json
from router_service.telemetry.event_proto import to_proto as _to_proto
from router_service.telemetry.events import EVENT_KINDS, TelemetryEvent, new_event_id

# The record layout's names and parser are the contract's (router_contract.event_records); they
# stay importable from here for the router's own code.
__all__ = [
    "CONTENT_TYPES",
    "DATASCHEMA",
    "ENCODINGS",
    "SOURCE_PREFIX",
    "SPEC_VERSION",
    "Encoding",
    "RecordEncoder",
    "ce_type",
    "decode",
    "default_router_instance",
    "encode",
    "kind_of",
    "to_proto",
]

Encoding = Literal["json", "protobuf"]
ENCODINGS: tuple[Encoding, ...] = ("json", "protobuf")
Headers = list[tuple[str, bytes]]
RecordHeaders = tuple[tuple[str, bytes], ...]


@functools.cache
def _hostname() -> str:
    return socket.gethostname()


def default_router_instance() -> str:
    """`<hostname>-<pid>`: unique per live process, and readable in kcat output."""
    return f"{_hostname()}-{os.getpid()}"


def to_proto(event: TelemetryEvent, *, router_instance: str | None = None) -> events_pb2.Event:
    """The `router.v1.Event` message for one event."""
    return _to_proto(event, router_instance or default_router_instance())


def encode(
    event: TelemetryEvent, encoding: Encoding = "json", *, router_instance: str | None = None
) -> tuple[bytes, bytes, Headers]:
    """(key, value, headers) of the Kafka record for one event (see RecordEncoder.encode)."""
    key, value, headers = _encoder(encoding, router_instance or default_router_instance()).encode(event)
    return key, value, list(headers)


@functools.lru_cache(maxsize=16)
def _encoder(encoding: Encoding, router_instance: str) -> RecordEncoder:
    return RecordEncoder(encoding, router_instance)


class RecordEncoder:
    """Encodes events for one encoding and router instance: what the publisher runs per event.

    Every header but `ce_id` and `ce_time` is the same for all events of a kind, so those header
    tuples are built once here and shared by every record; the event time is formatted once and
    used for both the `ce_time` header and the JSON `eventTime`.
    """

    def __init__(self, encoding: Encoding, router_instance: str) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")
        self._json = encoding == "json"
        self._router_instance = router_instance
        self._quoted_instance = encode_basestring(router_instance)  # a JSON string, as event_json quotes
        self._source = ("ce_source", (SOURCE_PREFIX + router_instance).encode())
        self._content_type = ("content-type", CONTENT_TYPES[encoding].encode())
        self._type_headers = {kind: ("ce_type", ce_type(kind).encode()) for kind in EVENT_KINDS}

    def encode(self, event: TelemetryEvent) -> tuple[bytes, bytes, RecordHeaders]:
        """(key, value, headers) of the Kafka record for one event, drawing its id if it has none."""
        context, body, event_id, event_time_unix_s = event
        if not event_id:
            event_id = new_event_id()
        event_time = wv.rfc3339_of(event_time_unix_s)
        if self._json:
            value = event_to_json(context, body, event_id, event_time, self._quoted_instance).encode()
        else:
            message = _to_proto(
                TelemetryEvent(context, body, event_id, event_time_unix_s), self._router_instance
            )
            value = message.SerializeToString()
        headers = (  # the order records always had (ce_type at CE_TYPE_POSITION: kind_of looks there)
            _SPEC_VERSION_HEADER,
            ("ce_id", event_id.encode()),
            self._source,
            self._type_headers[body.kind],
            ("ce_time", event_time.encode()),
            _DATASCHEMA_HEADER,
            self._content_type,
        )
        return context.request_id.encode(), value, headers


_SPEC_VERSION_HEADER = ("ce_specversion", SPEC_VERSION.encode())
_DATASCHEMA_HEADER = ("ce_dataschema", DATASCHEMA.encode())
