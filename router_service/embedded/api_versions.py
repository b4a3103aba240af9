"""Re-encode Tansu's ApiVersions v3+ responses the way Apache Kafka does: default tags omitted.

Why: Tansu writes all four of the response's top-level tagged fields (SupportedFeatures,
FinalizedFeaturesEpoch, FinalizedFeatures, ZkMigrationReady) even when they hold their defaults.
librdkafka before 2.2.0 (Debian 12 ships 2.0.2, Ubuntu 22.04 1.8.0: the kcat a user installs)
skips `length - 1` bytes per tag instead of `length` (fixed by confluentinc/librdkafka#4278), so it
loses sync in that tag section, fails with "Protocol read buffer underflow for ApiVersion v3",
and never falls back to v0 on that error. Apache Kafka's serializer writes a tagged field only
when it differs from its default, so brokers without features send no tags and old librdkafka
works. Dropping default-valued tags changes no meaning; a non-default tag is kept as it is.

Pure functions over bytes, no I/O (the relay is kafka_front.py).
"""

from __future__ import annotations

import struct

API_VERSIONS_KEY = 18
FIRST_FLEXIBLE_VERSION = 3

# Top-level tags of ApiVersionsResponse (KIP-584, KIP-866) and their default encodings.
_DEFAULT_TAG_VALUES: dict[int, bytes] = {
    0: b"\x01",  # SupportedFeatures: empty compact array
    1: struct.pack(">q", -1),  # FinalizedFeaturesEpoch
    2: b"\x01",  # FinalizedFeatures: empty compact array
    3: b"\x00",  # ZkMigrationReady: false
}


class MalformedResponseError(ValueError):
    """The bytes are not an ApiVersions v3+ response body."""


def is_flexible_api_versions(api_key: int, api_version: int) -> bool:
    """True for the requests whose responses strip_default_tags applies to."""
    return api_key == API_VERSIONS_KEY and api_version >= FIRST_FLEXIBLE_VERSION


def strip_default_tags(body: bytes) -> bytes:
    """The ApiVersions v3+ response `body` (after the correlation id) with default tags dropped.

    Raises MalformedResponseError when `body` does not parse; the caller then forwards it as is.
    """
    reader = _Reader(body)
    reader.take(2)  # error_code
    for _ in range(reader.compact_length()):
        reader.take(6)  # api_key, min_version, max_version
        reader.tags()
    reader.take(4)  # throttle_time_ms
    tags_start = reader.offset
    tags = reader.tags()
    if reader.offset != len(body):
        raise MalformedResponseError(f"{len(body) - reader.offset} trailing bytes")
    kept = [(tag, value) for tag, value in tags if _DEFAULT_TAG_VALUES.get(tag) != value]
    if len(kept) == len(tags):
        return body
    return body[:tags_start] + encode_tags(kept)


def encode_tags(tags: list[tuple[int, bytes]]) -> bytes:
    """A KIP-482 tagged-field section: count, then (tag, length, value) in ascending tag order."""
    out = bytearray(encode_uvarint(len(tags)))
    for tag, value in sorted(tags):
        out += encode_uvarint(tag) + encode_uvarint(len(value)) + value
    return bytes(out)


def encode_uvarint(value: int) -> bytes:
    if value < 0:
        raise ValueError("uvarint must be non-negative")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self.offset = 0

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if size < 0 or end > len(self._data):
            raise MalformedResponseError(f"needs {size} bytes at {self.offset}, has {len(self._data)}")
        chunk, self.offset = self._data[self.offset : end], end
        return chunk

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 28:  # Kafka's unsigned varints are 32-bit
                raise MalformedResponseError("uvarint longer than 5 bytes")

    def compact_length(self) -> int:
        # Compact arrays store length + 1; 0 is null, which ApiKeys never is.
        encoded = self.uvarint()
        if encoded == 0:
            raise MalformedResponseError("null api_keys array")
        return encoded - 1

    def tags(self) -> list[tuple[int, bytes]]:
        return [(self.uvarint(), self.take(self.uvarint())) for _ in range(self.uvarint())]
