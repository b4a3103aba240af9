"""The dedupe index of one input partition, written down as it grows, so a restart re-reads nothing.

Without it a restarted consumer rebuilds its dedupe index by re-reading its partitions from the
oldest id the index kept: 15 minutes of records (issue 19: lag peaked at 18,876 and took ~75 s
to recover). With it, each flush also writes the ids added since the last flush as one or more
segment records to the job's dedupe topic (`<snapshot topic>.dedupe`, compacted), *before* the
checkpoint that relies on them; a restore loads the segments and seeks straight to the
checkpoint's offset.

- A segment's key is `dedupe:<first offset>#<input partition>`; its value holds the entries
  (fingerprint, offset, timestamp) packed little-endian and base64-encoded: 24 bytes an entry,
  ~30 KB per 5-second flush at 250 events/s per partition.
- A flush that fails publishes the same entries again next time under the same keys (same
  first offset), so a retry overwrites rather than duplicates.
- Once the index has forgotten every id of a segment (older than its horizon or past its
  count cap), the next flush writes a tombstone for it: compaction keeps the topic about one
  horizon long.
- A crash between the segments and the checkpoint leaves entries at or past the checkpoint's
  offset: a restore drops those (their records are read again and re-added), see `entries_below`.

Pure: the runner publishes what `take` returns and calls `published` once acknowledged.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from consumers.aggregator import JsonDict
from consumers.dedupe import Entry

SEGMENT_KIND = "dedupe_segment"
KEY_PREFIX = "dedupe:"
MAX_SEGMENT_ENTRIES = 20_000  # 480 KB packed, 640 KB in base64: under Kafka's 1 MB default


def segment_key(first_offset: int) -> str:
    return f"{KEY_PREFIX}{first_offset}"


def encode(entries: Sequence[Entry]) -> JsonDict:
    fingerprints, offsets, timestamps = array("Q"), array("q"), array("q")
    for key, offset, timestamp_ms in entries:
        fingerprints.append(key)
        offsets.append(offset)
        timestamps.append(timestamp_ms)
    packed = b"".join(_little(column).tobytes() for column in (fingerprints, offsets, timestamps))
    return {
        "kind": SEGMENT_KIND,
        "first_offset": entries[0][1],
        "last_offset": entries[-1][1],
        "count": len(entries),
        "entries": base64.b64encode(packed).decode(),
    }


def decode(value: JsonDict) -> list[Entry]:
    """ValueError for a value `encode` did not write."""
    if value.get("kind") != SEGMENT_KIND:
        raise ValueError("not a dedupe segment")
    count = int(value["count"])
    packed = base64.b64decode(value["entries"], validate=True)
    if len(packed) != 24 * count:
        raise ValueError(f"a dedupe segment of {count} entries holds {len(packed)} bytes")
    fingerprints, offsets, timestamps = array("Q"), array("q"), array("q")
    for i, column in enumerate((fingerprints, offsets, timestamps)):
        column.frombytes(packed[8 * count * i : 8 * count * (i + 1)])
        _little(column)
    return list(zip(fingerprints, offsets, timestamps, strict=True))


def entries_below(segments: Iterable[JsonDict], next_offset: int) -> list[Entry]:
    """Every entry of the segments below `next_offset` (what the checkpoint covers), by offset."""
    entries = [entry for value in segments for entry in decode(value) if entry[1] < next_offset]
    entries.sort(key=lambda entry: entry[1])
    return entries


@dataclass(frozen=True, slots=True)
class LogRecord:
    key: str  # segment_key(first offset)
    value: JsonDict | None  # None: a tombstone


class DedupeLog:
    """Which segments of one partition are in the dedupe topic, and what the next flush writes."""

    __slots__ = ("_segments", "_taken")

    def __init__(self) -> None:
        self._segments: dict[int, int] = {}  # first offset -> last offset, of segments published
        self._taken: list[tuple[int, int]] = []

    def restored(self, segments: Iterable[JsonDict]) -> None:
        """Segments read back at a restore: they will be tombstoned when their ids are forgotten."""
        for value in segments:
            self._segments[int(value["first_offset"])] = int(value["last_offset"])

    def take(self, unlogged: Sequence[Entry], oldest_kept: int | None) -> list[LogRecord]:
        """New segments for `unlogged`, then tombstones of segments wholly below `oldest_kept`."""
        records = []
        self._taken = []
        for start in range(0, len(unlogged), MAX_SEGMENT_ENTRIES):
            chunk = unlogged[start : start + MAX_SEGMENT_ENTRIES]
            records.append(LogRecord(segment_key(chunk[0][1]), encode(chunk)))
            self._taken.append((chunk[0][1], chunk[-1][1]))
        forgotten_below = oldest_kept if oldest_kept is not None else _past(unlogged)
        rewritten = {first for first, _ in self._taken}  # same key again: the new value stands
        for first, last in sorted(self._segments.items()):
            if last < forgotten_below and first not in rewritten:
                records.append(LogRecord(segment_key(first), None))
        return records

    def published(self, records: Iterable[LogRecord]) -> None:
        """The broker acknowledged what `take` returned."""
        for record in records:
            if record.value is None:
                self._segments.pop(int(record.key.removeprefix(KEY_PREFIX)), None)
        self._segments.update(self._taken)
        self._taken = []

    def __len__(self) -> int:
        return len(self._segments)


def _past(unlogged: Sequence[Entry]) -> int:
    # An empty index has forgotten everything published; what is being written now stays.
    return unlogged[0][1] if unlogged else 2**63 - 1


def _little(column: array[int]) -> array[int]:
    if sys.byteorder == "big":
        column.byteswap()
    return column
