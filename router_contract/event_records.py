"""How a `router.v1.Event` travels as a Kafka record, and the canonical parser of its value.

Record layout (protos/router/v1/events.proto): key = the UTF-8 request_id; value = the event
in the proto3 JSON mapping (`application/json`, the default) or protobuf binary
(`application/protobuf`); CloudEvents binary-mode headers `ce_specversion`, `ce_id`,
`ce_source`, `ce_type` (`com.llmrouter.<kind>.v1`), `ce_time`, `ce_dataschema`, `content-type`.
The router writes records (router_service/telemetry/event_codec.py), the consumers read them
(consumers/decode.py, consumers/records.py); both take the names from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import json_format

from router_contract._gen.router.v1 import events_pb2

CONTENT_TYPES: dict[str, str] = {"json": "application/json", "protobuf": "application/protobuf"}
DATASCHEMA = "type.googleapis.com/router.v1.Event"
SOURCE_PREFIX = "//llmrouter/router/"
SPEC_VERSION = "1.0"

# The body kinds, in schema order: the fields of Event's `body` oneof.
EVENT_KINDS: tuple[str, ...] = tuple(
    field.name for field in events_pb2.Event.DESCRIPTOR.oneofs_by_name["body"].fields
)


def ce_type(kind: str) -> str:
    """CloudEvents type of an event kind; a breaking schema change would publish `.v2` alongside."""
    return f"com.llmrouter.{kind}.v1"


_KIND_BY_CE_TYPE = {ce_type(kind).encode(): kind for kind in EVENT_KINDS}
CE_TYPE_POSITION = 3  # where the router's RecordEncoder puts `ce_type` among the headers


def kind_of(headers: Sequence[tuple[str, bytes]]) -> str:
    """The event kind named by a record's `ce_type` header ("unknown" when absent or foreign)."""
    if len(headers) > CE_TYPE_POSITION and headers[CE_TYPE_POSITION][0] == "ce_type":
        # Where RecordEncoder puts it: the publisher asks this for every acknowledged record.
        return _KIND_BY_CE_TYPE.get(headers[CE_TYPE_POSITION][1], "unknown")
    for name, value in headers:
        if name == "ce_type":
            return _KIND_BY_CE_TYPE.get(value, "unknown")
    return "unknown"


def decode(value: bytes, headers: Sequence[tuple[str, bytes]]) -> events_pb2.Event:
    """Parse a record's value, as JSON or protobuf according to its `content-type` header."""
    content_type = dict(headers).get("content-type", CONTENT_TYPES["json"].encode()).decode()
    message = events_pb2.Event()
    if content_type == CONTENT_TYPES["protobuf"]:
        message.ParseFromString(value)
    elif content_type == CONTENT_TYPES["json"]:
        # Fields are only ever added (buf breaking): a reader built on an older contract must
        # read a newer router's events, as protobuf readers skip unknown field numbers.
        json_format.Parse(value, message, ignore_unknown_fields=True)
    else:
        raise ValueError(f"unsupported content-type {content_type!r}")
    return message
