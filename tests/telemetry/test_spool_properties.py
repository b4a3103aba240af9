"""Properties of the spool's replay order (issue 18): whatever sequence of writes, acks, crashes
and replays, replay yields every unacknowledged record exactly once, in write order, across
segment rotations and restarts.

The model is the list of records the spool accepted, in order, and the index of the last one
acknowledged. A crash is the process dying: the spool is dropped without close()'s fsync (the
page cache keeps what was written) and, sometimes, a torn half-frame is left at the end of the
last segment, as a SIGKILL in the middle of a write() leaves it; the next open must cut it off.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_service.telemetry.spool import Spool, SpoolPosition, SpoolRecord

SEGMENT_BYTES = 300  # a few records each: groups straddle segment boundaries often
MAX_BYTES = 6_000  # small enough that some runs fill the spool


def _record(serial: int, size: int) -> SpoolRecord:
    return SpoolRecord(
        "t", f"k{serial}".encode(), f"{serial}:".encode() + b"x" * size, (("n", b"%d" % serial),)
    )


write_op = st.tuples(st.just("write"), st.lists(st.integers(0, 120), min_size=1, max_size=6))
ack_op = st.tuples(st.just("ack"), st.floats(0.0, 1.0))
crash_op = st.tuples(st.just("crash"), st.booleans())  # True: leave a torn frame behind
replay_op = st.tuples(st.just("replay"), st.integers(1, 10))
ops = st.lists(st.one_of(write_op, ack_op, crash_op, replay_op), max_size=40)


class _Model:
    def __init__(self) -> None:
        self.written: list[tuple[SpoolRecord, SpoolPosition]] = []
        self.acked = 0  # records before this index are acknowledged

    def unacked(self) -> list[SpoolRecord]:
        return [record for record, _ in self.written[self.acked :]]


def _open(directory: Path) -> Spool:
    return Spool(directory, MAX_BYTES, segment_bytes=SEGMENT_BYTES, sync_segments=False)


def _crash(spool: Spool, directory: Path, torn: bool) -> None:
    """Die without close(): release what the process held (the kernel does that for a dead
    process), and maybe leave the start of a frame that never finished."""
    writer = spool._writer  # the kernel closes a dead process's files; nothing is flushed here
    for held in (writer, spool._cursor_file):
        if held is not None:
            held.close()
    spool._lock.close()
    if torn:
        segments = sorted(directory.glob("*.seg"))
        if segments:
            with segments[-1].open("ab") as file:
                file.write(b"\x00\x00\x01\x00\xde\xad")  # a frame header promising 256 bytes, cut short


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops, single=st.booleans())
def test_replay_yields_every_unacked_record_once_in_write_order(
    tmp_path: Path, ops: list[tuple[str, object]], single: bool
) -> None:
    directory = tmp_path / uuid.uuid4().hex
    model = _Model()
    serials = itertools.count()
    spool = _open(directory)
    try:
        for op, arg in ops:
            if op == "write":
                assert isinstance(arg, list)
                records = [_record(next(serials), size) for size in arg]
                if single:
                    positions = [spool.write(record) for record in records]
                else:
                    positions = spool.write_many(records)
                accepted = [p for p in positions if p is not None]
                if not single:  # a group stops at the first record that does not fit
                    assert positions == accepted + [None] * (len(positions) - len(accepted))
                model.written += [(r, p) for r, p in zip(records, positions, strict=True) if p is not None]
            elif op == "ack" and model.written:
                assert isinstance(arg, float)
                index = int(arg * (len(model.written) - 1))
                spool.ack(model.written[index][1])
                model.acked = max(model.acked, index + 1)
            elif op == "crash":
                assert isinstance(arg, bool)
                _crash(spool, directory, torn=arg)
                spool = _open(directory)
            elif op == "replay":
                assert isinstance(arg, int)
                batch = spool.read_batch(arg)
                assert [record for _, record in batch] == model.unacked()[:arg]
            assert [record for _, record in spool.replay()] == model.unacked()
            assert spool.is_empty == (not model.unacked())
        # Acknowledging what replay hands out, batch by batch, as the publisher does, drains it in order.
        drained: list[SpoolRecord] = []
        while batch := spool.read_batch(3):
            drained += [record for _, record in batch]
            spool.ack(batch[-1][0])
        assert drained == model.unacked()
        assert spool.is_empty
    finally:
        spool.close()
