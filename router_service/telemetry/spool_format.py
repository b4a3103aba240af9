"""The spool's on-disk format: record frames in segment files and the cursor line.

A segment file is a run of frames, each `>II` (payload length, CRC32 of the payload) + payload,
so a record torn by a crash mid-write is recognised (short frame or bad CRC) and never replayed.
The payload is a format byte, then the record (see `_encode`). The cursor file is one fixed-size
line, "<segment> <offset> <crc>", so that overwriting it in place never changes its length.

Pure encoding and decoding over bytes and readable files; the Spool (spool.py) owns the files.
"""

from __future__ import annotations

import io
import marshal
import struct
import zlib
from typing import NamedTuple

_FRAME = struct.Struct(">II")  # payload length, CRC32(payload)
FRAME_HEADER_BYTES = _FRAME.size
_STRUCT_FORMAT = 1  # read only: length-prefixed fields (spools written before the marshal format)
_MARSHAL_FORMAT = 2


class SpoolRecord(NamedTuple):
    """One Kafka record as it will be sent: topic, key, value and headers.

    A NamedTuple: the publisher builds one per event, at a third of a frozen dataclass's cost.
    """

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class SpoolPosition(NamedTuple):
    """A place in the spool: a segment number and a byte offset inside it (ordered as such).

    A NamedTuple, like SpoolRecord: with events.durable one is made per event."""

    segment: int
    offset: int


# -- frames ------------------------------------------------------------------------------------


def encode_frame(record: SpoolRecord) -> bytes:
    """The whole frame of one record, as it is appended to a segment."""
    payload = _encode(record)
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_record(file: io.BufferedReader) -> tuple[int, SpoolRecord] | None:
    """(frame size, record) of the next frame, or None at the end or at a torn/corrupt frame."""
    payload = read_frame(file)
    if payload is None:
        return None
    try:
        return _FRAME.size + len(payload), _decode(payload)
    except (ValueError, struct.error):  # UnicodeDecodeError is a ValueError
        return None


def read_frame(file: io.BufferedReader) -> bytes | None:
    """The next whole, intact payload, or None at the end or at a torn/corrupt frame."""
    header = file.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    length, crc = _FRAME.unpack(header)
    payload = file.read(length)
    if len(payload) < length or zlib.crc32(payload) != crc:
        return None
    return payload


# -- the cursor line -----------------------------------------------------------------------------


def cursor_line(position: SpoolPosition) -> bytes:
    fields = f"{position.segment:020d} {position.offset:020d}"
    return f"{fields} {zlib.crc32(fields.encode()):08x}\n".encode()


def parse_cursor(text: str) -> SpoolPosition:
    """The cursor line; ValueError if torn. Two fields: written by an earlier version (rename)."""
    fields = text.split()
    if len(fields) == 3:
        segment, offset, crc = fields
        if int(crc, 16) != zlib.crc32(f"{segment} {offset}".encode()):
            raise ValueError("spool cursor fails its CRC")
    elif len(fields) == 2:
        segment, offset = fields
    else:
        raise ValueError(f"spool cursor has {len(fields)} fields")
    return SpoolPosition(int(segment), int(offset))


# -- payloads ------------------------------------------------------------------------------------

# Payload: a format byte, then the record. Format 2 (written now): marshal of the record's tuple,
# one C call; with events.durable this runs for every event on the request path, where format 1's
# two dozen struct.pack calls cost ~6 us more an event (cold caches between paced events).
# marshal only builds values, never runs code, and the CRC has vouched for the bytes; its format
# for these types (str, bytes, None, tuple) has not changed since Python 3.4 and newer versions
# read older ones. Format 1, length-prefixed fields, is still read (spools of earlier versions).
_MARSHAL_PREFIX = bytes([_MARSHAL_FORMAT])


def _encode(record: SpoolRecord) -> bytes:
    return _MARSHAL_PREFIX + marshal.dumps((record.topic, record.key, record.value, tuple(record.headers)))


def _decode(payload: bytes) -> SpoolRecord:
    if payload[:1] == _MARSHAL_PREFIX:
        return _decode_marshal(payload[1:])
    return _decode_struct(payload)


def _decode_marshal(data: bytes) -> SpoolRecord:
    try:
        topic, key, value, headers = marshal.loads(data)
    except (EOFError, TypeError) as exc:
        raise ValueError(f"unreadable spool record: {exc}") from None
    well_formed = (
        isinstance(topic, str)
        and (key is None or isinstance(key, bytes))
        and isinstance(value, bytes)
        and isinstance(headers, tuple)
        and all(
            isinstance(pair, tuple | list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], bytes)
            for pair in headers
        )
    )
    if not well_formed:
        raise ValueError("spool record of unexpected shape")
    return SpoolRecord(topic, key, value, tuple((name, data) for name, data in headers))


def _decode_struct(payload: bytes) -> SpoolRecord:
    reader = _Reader(payload)
    version = reader.unpack(">B")
    if version != _STRUCT_FORMAT:
        raise ValueError(f"unknown spool record version {version}")
    topic = reader.take(reader.unpack(">H")).decode()
    key_length = reader.unpack(">i")
    key = None if key_length < 0 else reader.take(key_length)
    value = reader.take(reader.unpack(">I"))
    headers = tuple(
        (reader.take(reader.unpack(">H")).decode(), reader.take(reader.unpack(">I")))
        for _ in range(reader.unpack(">H"))
    )
    return SpoolRecord(topic=topic, key=key, value=value, headers=headers)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self._data, self._at)
        self._at += struct.calcsize(fmt)
        return int(value)

    def take(self, length: int) -> bytes:
        chunk = self._data[self._at : self._at + length]
        self._at += length
        return chunk
