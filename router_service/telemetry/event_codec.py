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
import json
import os
import socket
from collections.abc import Sequence
from typing import Literal

from google.protobuf import json_format

from router_service._gen.router.v1 import events_pb2
from router_service.telemetry import wire_values as wv
from router_service.telemetry.event_json import to_json_dict
from router_service.telemetry.event_proto import to_proto as _to_proto
from router_service.telemetry.events import EVENT_KINDS, TelemetryEvent

Encoding = Literal["json", "protobuf"]
ENCODINGS: tuple[Encoding, ...] = ("json", "protobuf")
Headers = list[tuple[str, bytes]]

CONTENT_TYPES: dict[str, str] = {"json": "application/json", "protobuf": "application/protobuf"}
DATASCHEMA = "type.googleapis.com/router.v1.Event"
SOURCE_PREFIX = "//llmrouter/router/"
SPEC_VERSION = "1.0"
# Compact and UTF-8 as is (no \u escapes), built once rather than per json.dumps call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def ce_type(kind: str) -> str:
    """CloudEvents type of an event kind; a breaking schema change would publish `.v2` alongside."""
    return f"com.llmrouter.{kind}.v1"


_KIND_BY_CE_TYPE = {ce_type(kind).encode(): kind for kind in EVENT_KINDS}


def kind_of(headers: Sequence[tuple[str, bytes]]) -> str:
    """The event kind named by a record's `ce_type` header ("unknown" when absent or foreign)."""
    for name, value in headers:
        if name == "ce_type":
            return _KIND_BY_CE_TYPE.get(value, "unknown")
    return "unknown"


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
    """(key, value, headers) of the Kafka record for one event."""
    instance = router_instance or default_router_instance()
    if encoding == "json":
        value = _JSON.encode(to_json_dict(event, instance)).encode()
    elif encoding == "protobuf":
        value = _to_proto(event, instance).SerializeToString()
    else:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")
    return event.context.request_id.encode(), value, _headers(event, instance, encoding)


def _headers(event: TelemetryEvent, router_instance: str, encoding: Encoding) -> Headers:
    return [
        ("ce_specversion", _SPEC_VERSION_BYTES),
        ("ce_id", event.event_id.encode()),
        ("ce_source", _source(router_instance)),
        ("ce_type", _CE_TYPE_BYTES[event.kind]),
        ("ce_time", wv.rfc3339(*wv.split_time(event.event_time_unix_s)).encode()),
        ("ce_dataschema", _DATASCHEMA_BYTES),
        ("content-type", _CONTENT_TYPE_BYTES[encoding]),
    ]


# Constant header values, encoded once: headers are built for every event.
_SPEC_VERSION_BYTES = SPEC_VERSION.encode()
_DATASCHEMA_BYTES = DATASCHEMA.encode()
_CONTENT_TYPE_BYTES = {encoding: media_type.encode() for encoding, media_type in CONTENT_TYPES.items()}
_CE_TYPE_BYTES = {kind: ce_type(kind).encode() for kind in EVENT_KINDS}


@functools.lru_cache(maxsize=16)
def _source(router_instance: str) -> bytes:
    return (SOURCE_PREFIX + router_instance).encode()


def decode(value: bytes, headers: Sequence[tuple[str, bytes]]) -> events_pb2.Event:
    """Parse a record's value, as JSON or protobuf according to its `content-type` header."""
    content_type = dict(headers).get("content-type", CONTENT_TYPES["json"].encode()).decode()
    message = events_pb2.Event()
    if content_type == CONTENT_TYPES["protobuf"]:
        message.ParseFromString(value)
    elif content_type == CONTENT_TYPES["json"]:
        json_format.Parse(value, message)
    else:
        raise ValueError(f"unsupported content-type {content_type!r}")
    return message
