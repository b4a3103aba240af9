"""An append-only disk spool for Kafka records the broker could not take (yet).

Layout: numbered segment files (`000000000001.seg`, ...) in one directory, plus a `cursor` file
saying how far replay has been acknowledged and a `.lock` file that keeps a second process out.
The cursor is one fixed-size line with a CRC, overwritten in place by one pwrite() per ack.
Records are framed with a length and a CRC (spool_format.py), so a record torn by a crash
mid-write is recognised on the next open, cut off, and never replayed.

Guarantees: records replay in append order (oldest segment first) and survive a process restart;
records are written with one write() straight to the OS (`write_many`: a group of them in one), so
a process crash (SIGKILL included) loses at most the records being written, cut off as torn at the
next open: the page cache holds the rest and the kernel writes it back. It is not fsynced per
record (that costs a disk flush per event), so a machine crash or power loss can lose the tail
the kernel had not written back yet (by default up to about 30 s of it, vm.dirty_expire_centisecs);
`sync_segments` fsyncs each segment when it is closed. Total size is bounded: `append` returns
False when the record does not fit, and the caller counts the drop.

Two uses (publisher.py): a spool for what the broker could not take, and, with `events.durable`,
a write-ahead log of every event before its call answers, trimmed (`ack`) as the broker acks.

Pure synchronous file I/O with no asyncio: appends are small unbuffered writes, cheap enough to
run on the event loop. The directory and its files are private (0700/0600; spool_files.py).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path

from router_service.telemetry.spool_files import (
    SpoolLockedError,
    acquire_lock,
    make_private_dir,
    private_opener,
    tighten_files,
    write_all,
)
from router_service.telemetry.spool_format import (
    FRAME_HEADER_BYTES,
    SpoolPosition,
    SpoolRecord,
    cursor_line,
    encode_frame,
    parse_cursor,
    read_frame,
    read_record,
)

# The record types and the lock error are part of the spool's interface: importers name them here.
__all__ = ["Spool", "SpoolLockedError", "SpoolPosition", "SpoolRecord"]

log = logging.getLogger(__name__)

_SEGMENT_SUFFIX = ".seg"
_CURSOR_FILE = "cursor"
_LOCK_FILE = ".lock"


class Spool:
    """Append records, replay them in order, acknowledge what was delivered."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        max_bytes: int,
        *,
        segment_bytes: int = 8 << 20,
        sync_segments: bool = True,
    ) -> None:
        """`sync_segments`: fsync a segment when it is closed (full, or at close()). A write-ahead
        log on the request path turns it off: a full segment's fsync would stall every call in
        flight, and what it buys (the segment on disk before the kernel writes it back) only
        matters on a machine crash."""
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self._dir = Path(directory)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._sync_segments = sync_segments
        make_private_dir(self._dir)
        self._lock = acquire_lock(self._dir / _LOCK_FILE)
        self._sizes: dict[int, int] = {}  # segment number -> bytes of whole records in it
        self._total = 0  # sum(self._sizes.values()), kept: append() runs once per event
        # The active (last) segment, opened lazily and unbuffered: a frame is one write() to the OS,
        # without a copy into a buffer and a flush() after it (that doubled the cost of a write).
        self._writer: io.FileIO | None = None
        self._cursor = SpoolPosition(0, 0)
        self._cursor_file: io.FileIO | None = None  # opened by the first ack, kept open
        self._load()

    # -- state -------------------------------------------------------------------------------

    @property
    def total_bytes(self) -> int:
        """Bytes on disk in segment files, including acknowledged records not yet deleted."""
        return self._total

    @property
    def pending_bytes(self) -> int:
        """Bytes of records appended but not yet acknowledged."""
        return sum(self._unread(segment) for segment in self._sizes)

    @property
    def is_empty(self) -> bool:
        return self.pending_bytes == 0

    # -- writing -----------------------------------------------------------------------------

    def append(self, record: SpoolRecord) -> bool:
        """Write one record; False (and nothing written) when it would exceed max_bytes."""
        return self.write(record) is not None

    def write(self, record: SpoolRecord) -> SpoolPosition | None:
        """Write one record and return the position just after it (ack that once it is
        delivered); None (and nothing written) when it would exceed max_bytes."""
        return self.write_many((record,))[0]

    def write_many(self, records: Sequence[SpoolRecord]) -> list[SpoolPosition | None]:
        """Write records in order, one write() per segment they land in (so one, unless the
        group crosses into a new segment), and return the position just after each.

        With events.durable the publisher writes a call's events together: the syscall, not the
        framing, was most of a per-event write's cost. A record that would exceed max_bytes is
        not written, nor is any after it (None for each), so the spool keeps the group's order.
        On an OSError (disk full...) the chunk being written is cut off and the error raised;
        chunks already written to earlier segments stay, to be replayed (and deduped) as usual.
        """
        positions: list[SpoolPosition | None] = []
        chunk: list[bytes] = []  # frames for `segment`, not written yet
        chunk_bytes = 0
        writer: io.FileIO | None = None
        segment = 0
        for record in records:
            frame = encode_frame(record)
            if self._total + chunk_bytes + len(frame) > self._max_bytes:
                break
            if writer is None or self._sizes[segment] + chunk_bytes + len(frame) > self._segment_bytes:
                if writer is not None:
                    self._write_chunk(writer, segment, chunk, chunk_bytes)
                    chunk, chunk_bytes = [], 0
                writer, segment = self._writer_for(len(frame))  # rotates when the frame does not fit
            chunk.append(frame)
            chunk_bytes += len(frame)
            positions.append(SpoolPosition(segment, self._sizes[segment] + chunk_bytes))
        if writer is not None and chunk:
            self._write_chunk(writer, segment, chunk, chunk_bytes)
        positions.extend(None for _ in range(len(records) - len(positions)))
        return positions

    def _write_chunk(self, writer: io.FileIO, segment: int, frames: list[bytes], size: int) -> None:
        try:
            # To the OS at once: a later process crash cannot lose it.
            write_all(writer, frames[0] if len(frames) == 1 else b"".join(frames))
        except OSError:
            # Disk full or similar: cut any partial frame off so later appends stay readable.
            self._close_writer(sync=False)
            os.truncate(self._segment_path(segment), self._sizes[segment])
            raise
        self._sizes[segment] += size
        self._total += size

    def _writer_for(self, frame_size: int) -> tuple[io.FileIO, int]:
        active = self._active_segment()
        if self._writer is not None and self._sizes[active] + frame_size <= self._segment_bytes:
            return self._writer, active
        if self._writer is not None and self._sizes[active] == 0:
            return self._writer, active  # a record bigger than a segment gets a segment of its own
        self._close_writer()
        segment = active + 1
        self._sizes[segment] = 0
        self._writer = open(self._segment_path(segment), "ab", buffering=0, opener=private_opener)  # noqa: SIM115 (closed in close())
        return self._writer, segment

    # -- reading and acknowledging -------------------------------------------------------------

    def replay(self) -> Generator[tuple[SpoolPosition, SpoolRecord], None, None]:
        """Unacknowledged records in order, each with the position just after it (ack that).

        Records appended while iterating are yielded too. Close the iterator (or let it be
        collected) when stopping early; it holds the open segment file.
        """
        segment, offset = self._cursor.segment, self._cursor.offset
        while True:
            if segment in self._sizes:
                yield from self._replay_segment(segment, offset)
            later = [number for number in self._sizes if number > segment]
            if not later:
                return
            segment, offset = min(later), 0

    def read_batch(self, max_records: int) -> list[tuple[SpoolPosition, SpoolRecord]]:
        """Up to `max_records` unacknowledged records, in order, each with its ack position."""
        with contextlib.closing(self.replay()) as records:
            return list(itertools.islice(records, max_records))

    def _replay_segment(self, segment: int, offset: int) -> Iterator[tuple[SpoolPosition, SpoolRecord]]:
        with open(self._segment_path(segment), "rb") as file:
            file.seek(offset)
            while segment in self._sizes and offset < self._sizes[segment]:
                record = read_record(file)
                if record is None:
                    log.error("spool segment %s is corrupt at byte %d; skipping its rest", segment, offset)
                    return
                size, decoded = record
                offset += size
                yield SpoolPosition(segment, offset), decoded

    def ack(self, position: SpoolPosition) -> None:
        """Everything before `position` was delivered: advance the cursor, delete spent segments."""
        if position <= self._cursor:
            return
        self._cursor = position
        for segment in sorted(self._sizes):
            spent = segment < position.segment or (
                segment == position.segment and position.offset >= self._sizes[segment]
            )
            if spent:
                self._delete_segment(segment)
        self._save_cursor()

    def _delete_segment(self, segment: int) -> None:
        if segment == self._active_segment():
            self._close_writer(sync=False)  # about to be deleted: nothing to make durable
        self._total -= self._sizes.pop(segment)
        self._segment_path(segment).unlink(missing_ok=True)

    def _unread(self, segment: int) -> int:
        if segment < self._cursor.segment:
            return 0
        if segment == self._cursor.segment:
            return max(self._sizes[segment] - self._cursor.offset, 0)
        return self._sizes[segment]

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush and fsync the active segment and release the directory lock. Idempotent."""
        self._close_writer()
        if self._cursor_file is not None:
            self._cursor_file.close()
            self._cursor_file = None
        if not self._lock.closed:
            self._lock.close()  # closing the descriptor releases the flock

    def _close_writer(self, *, sync: bool | None = None) -> None:
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            if self._sync_segments if sync is None else sync:  # a closed segment is final: make it durable
                writer.flush()
                os.fsync(writer.fileno())
        finally:
            writer.close()

    def _active_segment(self) -> int:
        return max(self._sizes, default=self._cursor.segment)

    def _segment_path(self, segment: int) -> Path:
        return self._dir / f"{segment:012d}{_SEGMENT_SUFFIX}"

    # -- restart -----------------------------------------------------------------------------

    def _load(self) -> None:
        tighten_files(self._dir)
        for path in self._dir.glob(f"*{_SEGMENT_SUFFIX}"):
            self._sizes[int(path.stem)] = path.stat().st_size
        if self._sizes:
            self._truncate_torn_tail(max(self._sizes))
        self._total = sum(self._sizes.values())
        self._cursor = self._load_cursor()
        if self._sizes and self._cursor.segment < min(self._sizes):
            self._cursor = SpoolPosition(min(self._sizes), 0)
        # Appends after a restart go to a fresh segment; the old tail segment is read-only now.

    def _truncate_torn_tail(self, segment: int) -> None:
        """Cut a record torn by a crash (short frame or bad CRC) off the last segment."""
        path = self._segment_path(segment)
        good = 0
        with open(path, "rb") as file:
            while (payload := read_frame(file)) is not None:
                good += FRAME_HEADER_BYTES + len(payload)
        if good < self._sizes[segment]:
            log.warning(
                "spool segment %s: dropping %d bytes of a torn record", path, self._sizes[segment] - good
            )
            os.truncate(path, good)
            self._sizes[segment] = good

    def _load_cursor(self) -> SpoolPosition:
        try:
            return parse_cursor((self._dir / _CURSOR_FILE).read_text())
        except (FileNotFoundError, ValueError):
            # None, or torn: replay from the oldest segment (what was delivered comes again,
            # deduped by event id), never from a guess that could skip undelivered records.
            return SpoolPosition(0, 0)

    def _save_cursor(self) -> None:
        # One pwrite() of a fixed-size line over the last one, on a descriptor kept open: a
        # process crash leaves the old line or the new one (a write within one page is not torn
        # by a kill), and the CRC catches a line torn by a machine crash. It replaced a
        # write-then-rename per ack, which on ext4 (auto_da_alloc: a rename over a file flushes
        # the new one's data) cost ~100-150 us of CPU and up to milliseconds of stalled loop.
        first = self._cursor_file is None
        if self._cursor_file is None:
            fd = private_opener(str(self._dir / _CURSOR_FILE), os.O_RDWR | os.O_CREAT)
            self._cursor_file = io.FileIO(fd, "r+")  # an object: closed if the spool is dropped
        line = cursor_line(self._cursor)
        if os.pwrite(self._cursor_file.fileno(), line, 0) != len(line):
            raise OSError(f"short write of the spool cursor in {self._dir}")
        if first:  # cut whatever an earlier format left after the line
            self._cursor_file.truncate(len(line))
