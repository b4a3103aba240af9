"""strip_default_tags: ApiVersions v3+ bodies as Apache Kafka would encode them (no default tags)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.embedded.api_versions import (
    MalformedResponseError,
    encode_tags,
    encode_uvarint,
    is_flexible_api_versions,
    strip_default_tags,
)

# Tansu 0.6's four top-level tags, all at their defaults (captured from its answer to kcat).
TANSU_DEFAULT_TAGS = bytes.fromhex("040001010108ffffffffffffffff020101030100")


def body(api_keys: list[tuple[int, int, int]], tags: bytes) -> bytes:
    out = struct.pack(">h", 0) + encode_uvarint(len(api_keys) + 1)
    for key, low, high in api_keys:
        out += struct.pack(">hhh", key, low, high) + b"\x00"
    return out + struct.pack(">i", 0) + tags


KEYS = [(0, 0, 11), (1, 0, 16), (18, 0, 3)]


def test_tansus_default_tags_are_dropped() -> None:
    assert strip_default_tags(body(KEYS, TANSU_DEFAULT_TAGS)) == body(KEYS, b"\x00")


def test_a_non_default_tag_is_kept_and_the_defaults_around_it_dropped() -> None:
    epoch_7 = struct.pack(">q", 7)
    tags = encode_tags([(0, b"\x01"), (1, epoch_7), (3, b"\x01")])
    assert strip_default_tags(body(KEYS, tags)) == body(KEYS, encode_tags([(1, epoch_7), (3, b"\x01")]))


@pytest.mark.parametrize("tags", [b"\x00", encode_tags([(9, b"abc")])])
def test_a_body_with_nothing_to_drop_is_returned_unchanged(tags: bytes) -> None:
    original = body(KEYS, tags)
    assert strip_default_tags(original) is original


@pytest.mark.parametrize(
    "broken",
    [
        b"",
        body(KEYS, TANSU_DEFAULT_TAGS)[:-1],  # truncated inside a tag
        body(KEYS, TANSU_DEFAULT_TAGS) + b"\x00",  # trailing byte
        b"\x00\x00\x00",  # null api_keys array
        b"\x00\x00\xff\xff\xff\xff\xff\xff",  # varint too long
    ],
)
def test_what_does_not_parse_is_an_error_not_a_guess(broken: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        strip_default_tags(broken)


@pytest.mark.parametrize(
    ("api_key", "version", "flexible"), [(18, 3, True), (18, 4, True), (18, 2, False), (3, 12, False)]
)
def test_only_flexible_api_versions_answers_are_rewritten(api_key: int, version: int, flexible: bool) -> None:
    assert is_flexible_api_versions(api_key, version) is flexible


@settings(max_examples=200, deadline=None)
@given(
    api_keys=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 5), st.integers(0, 20)), max_size=60),
    tags=st.dictionaries(st.integers(0, 300), st.binary(max_size=20), max_size=6),
)
def test_the_result_parses_and_keeps_exactly_the_non_default_tags(
    api_keys: list[tuple[int, int, int]], tags: dict[int, bytes]
) -> None:
    defaults = {0: b"\x01", 1: struct.pack(">q", -1), 2: b"\x01", 3: b"\x00"}
    stripped = strip_default_tags(body(api_keys, encode_tags(sorted(tags.items()))))
    kept = sorted((tag, value) for tag, value in tags.items() if defaults.get(tag) != value)
    assert stripped == body(api_keys, encode_tags(kept))
    assert strip_default_tags(stripped) == stripped  # idempotent


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**21, 2**32 - 1])
def test_uvarint_round_trips_through_the_tag_section(value: int) -> None:
    tags = encode_tags([(value, b"v")])
    assert strip_default_tags(body([], tags)) == body([], tags)
