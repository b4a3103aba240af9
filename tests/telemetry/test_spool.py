from __future__ import annotations

import logging
import marshal
import os
import stat
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from router_service.telemetry.spool import Spool, SpoolLockedError, SpoolRecord

OpenSpool = Callable[..., Spool]


@pytest.fixture
def open_spool() -> Iterator[OpenSpool]:
    """Spool(...) that is closed at teardown (close() is idempotent)."""
    opened: list[Spool] = []

    def make(*args: Any, **kwargs: Any) -> Spool:
        opened.append(Spool(*args, **kwargs))
        return opened[-1]

    yield make
    for spool in opened:
        spool.close()


def record(i: int, size: int = 10) -> SpoolRecord:
    return SpoolRecord(
        topic="t",
        key=f"k{i}".encode(),
        value=str(i).encode().ljust(size, b"."),
        headers=(("ce_id", str(i).encode()), ("content-type", b"application/json")),
    )


def values(spool: Spool) -> list[bytes]:
    return [rec.value.rstrip(b".") for _, rec in spool.replay()]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def test_replays_in_append_order_across_segments(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    for i in range(20):
        assert spool.append(record(i))

    assert values(spool) == [str(i).encode() for i in range(20)]
    assert len(segments(tmp_path)) > 3


def test_record_fields_round_trip_including_a_missing_key(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20)
    original = SpoolRecord("llmrouter.events.v1", None, b"\x00\xffvalue", (("h", b""), ("ü", b"\x01")))
    spool.append(original)

    assert [rec for _, rec in spool.replay()] == [original]


def test_append_refuses_past_the_bound(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=500, segment_bytes=100)
    accepted = [spool.append(record(i)) for i in range(50)]

    assert accepted[0] and not accepted[-1]
    assert accepted == sorted(accepted, reverse=True)  # once full, stays full until acked
    assert spool.total_bytes <= 500
    assert sum(f.stat().st_size for f in segments(tmp_path)) == spool.total_bytes


def test_ack_deletes_spent_segments_and_frees_room(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=600, segment_bytes=150)
    while spool.append(record(len(values(spool)))):
        pass
    entries = spool.read_batch(5)
    before = len(segments(tmp_path))

    spool.ack(entries[-1][0])

    assert len(segments(tmp_path)) < before
    assert values(spool)[0] == b"5"
    assert spool.append(record(99))  # room again


def test_fully_acked_spool_is_empty_and_has_no_segments(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20, segment_bytes=100)
    for i in range(10):
        spool.append(record(i))
    last = spool.read_batch(100)[-1][0]

    spool.ack(last)

    assert spool.is_empty and spool.pending_bytes == 0 and spool.total_bytes == 0
    assert segments(tmp_path) == []
    spool.append(record(10))
    assert values(spool) == [b"10"]


def test_restart_replays_only_what_was_not_acked(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20, segment_bytes=100)
    for i in range(10):
        spool.append(record(i))
    spool.ack(spool.read_batch(4)[-1][0])
    spool.close()

    reopened = open_spool(tmp_path, max_bytes=1 << 20, segment_bytes=100)
    reopened.append(record(10))

    assert values(reopened) == [str(i).encode() for i in range(4, 11)]


@pytest.mark.parametrize("damage", ["short_header", "short_payload", "bad_crc"])
def test_torn_last_record_is_ignored_after_a_crash(
    tmp_path: Path, open_spool: OpenSpool, damage: str
) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20)
    for i in range(3):
        spool.append(record(i))
    spool.close()
    last = segments(tmp_path)[-1]
    data = last.read_bytes()
    if damage == "short_header":
        last.write_bytes(data + b"\x00\x00\x01")
    elif damage == "short_payload":
        last.write_bytes(data + b"\x00\x00\x00\x40\x00\x00\x00\x00" + b"partial")
    else:
        last.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))

    reopened = open_spool(tmp_path, max_bytes=1 << 20)
    kept = 3 if damage != "bad_crc" else 2
    assert values(reopened) == [str(i).encode() for i in range(kept)]
    reopened.append(record(7))
    assert values(reopened)[-1] == b"7"


def test_replay_sees_records_appended_while_iterating(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20, segment_bytes=60)
    spool.append(record(0))
    seen = []
    for _, rec in spool.replay():
        seen.append(rec.value.rstrip(b"."))
        if len(seen) < 5:
            spool.append(record(len(seen)))

    assert seen == [str(i).encode() for i in range(5)]


def test_a_record_larger_than_a_segment_gets_its_own(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20, segment_bytes=50)
    spool.append(record(0, size=500))
    spool.append(record(1))

    assert values(spool) == [b"0", b"1"]


def test_a_directory_has_one_owner_at_a_time(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=1000)
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path, max_bytes=1000)
    spool.close()
    spool.close()  # idempotent
    with Spool(tmp_path, max_bytes=1000):
        pass


# --- permissions: events hold caller data, so only the owner may read them -------------------


@pytest.fixture(params=[0o000, 0o022, 0o002], ids=lambda umask: f"umask{umask:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_spool_is_private_whatever_the_umask(tmp_path: Path, open_spool: OpenSpool, umask: int) -> None:
    directory = tmp_path / "var" / "spool"
    spool = open_spool(directory, max_bytes=1 << 20, segment_bytes=60)
    for i in range(4):  # several segments
        spool.append(record(i))
    [(position, _), *_] = spool.read_batch(1)
    spool.ack(position)  # writes the cursor
    spool.close()

    assert _mode(directory) == 0o700
    files = sorted(path.name for path in directory.iterdir())
    assert "cursor" in files and ".lock" in files and len(files) >= 4
    assert {name: _mode(directory / name) for name in files} == dict.fromkeys(files, 0o600)


def test_a_looser_existing_spool_is_tightened_with_a_warning(
    tmp_path: Path, open_spool: OpenSpool, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path / "spool", max_bytes=1 << 20) as spool:
        spool.append(record(0))
    directory = tmp_path / "spool"
    os.chmod(directory, 0o755)  # as an earlier version (or an operator) left it
    for path in directory.iterdir():
        os.chmod(path, 0o644)

    with caplog.at_level(logging.WARNING, logger="router_service.telemetry.spool_files"):
        spool = open_spool(directory, max_bytes=1 << 20)

    assert values(spool) == [b"0"]  # still readable by us
    assert _mode(directory) == 0o700
    assert {_mode(path) for path in directory.iterdir()} == {0o600}
    messages = [r.getMessage() for r in caplog.records]
    assert any("was mode 755" in m for m in messages), messages
    assert any("1 files were readable" in m for m in messages), messages  # the segment (the lock: at open)


def test_a_private_spool_opens_without_warnings(
    tmp_path: Path, open_spool: OpenSpool, caplog: pytest.LogCaptureFixture
) -> None:
    with Spool(tmp_path / "spool", max_bytes=1 << 20) as spool:
        spool.append(record(0))

    with caplog.at_level(logging.WARNING, logger="router_service.telemetry.spool_files"):
        open_spool(tmp_path / "spool", max_bytes=1 << 20)

    assert caplog.records == []


def test_a_spool_of_the_earlier_record_format_is_still_replayed(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    original = SpoolRecord("llmrouter.events.v1", b"req-1", b"{}", (("ce_id", b"e-1"), ("ce_type", b"x")))
    keyless = SpoolRecord("t", None, b"v", ())
    (tmp_path / "000000000001.seg").write_bytes(
        _frame(_struct_format(original)) + _frame(_struct_format(keyless))
    )
    spool = open_spool(tmp_path, max_bytes=1 << 20)

    assert [rec for _, rec in spool.replay()] == [original, keyless]


def test_a_record_of_an_unexpected_shape_is_skipped_as_corrupt(tmp_path: Path, open_spool: OpenSpool) -> None:
    good = record(1)
    odd = b"\x02" + marshal.dumps(("t", 5, b"v", ()))  # an int key: intact bytes, not a record
    (tmp_path / "000000000001.seg").write_bytes(_frame(odd))
    (tmp_path / "000000000002.seg").write_bytes(_frame(b"\x02" + marshal.dumps(tuple(good))))
    spool = open_spool(tmp_path, max_bytes=1 << 20)

    assert [rec for _, rec in spool.replay()] == [good]


def _frame(payload: bytes) -> bytes:
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def _struct_format(rec: SpoolRecord) -> bytes:
    """A payload as spools wrote it before the marshal format (format 1)."""
    topic = rec.topic.encode()
    parts = [struct.pack(">BH", 1, len(topic)), topic]
    parts += [struct.pack(">i", -1)] if rec.key is None else [struct.pack(">i", len(rec.key)), rec.key]
    parts += [struct.pack(">I", len(rec.value)), rec.value, struct.pack(">H", len(rec.headers))]
    for name, value in rec.headers:
        parts += [struct.pack(">H", len(name.encode())), name.encode(), struct.pack(">I", len(value)), value]
    return b"".join(parts)


def test_write_many_rotates_segments_inside_a_group(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    written = spool.write_many([record(i) for i in range(20)])
    positions = [p for p in written if p is not None]

    assert values(spool) == [str(i).encode() for i in range(20)]
    assert len(positions) == 20  # every record fitted
    assert positions == sorted(positions) and len({p.segment for p in positions}) > 3
    assert all(f.stat().st_size <= 200 for f in segments(tmp_path))
    # Each position is just after its record: acking the 10th leaves the last 10.
    spool.ack(positions[9])
    assert values(spool) == [str(i).encode() for i in range(10, 20)]


def test_write_many_stops_at_the_first_record_over_the_bound(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=300, segment_bytes=100)
    positions = spool.write_many([record(0), record(1, size=400), record(2)])

    assert positions[0] is not None and positions[1:] == [None, None]  # record 2 would fit: order first
    assert values(spool) == [b"0"]


def test_the_cursor_is_one_line_overwritten_in_place_by_each_ack(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    for i in range(6):
        spool.append(record(i))
    batch = spool.read_batch(6)
    spool.ack(batch[1][0])
    first = (tmp_path / "cursor").read_bytes()
    spool.ack(batch[3][0])  # not closed: the line is in the file as soon as ack returns
    second = (tmp_path / "cursor").read_bytes()

    assert len(first) == len(second) and first != second
    assert not list(tmp_path.glob("cursor*.tmp"))
    unacked = values(spool)
    spool.close()
    assert values(open_spool(tmp_path, max_bytes=1 << 20)) == unacked == [b"4", b"5"]


def test_a_cursor_of_an_earlier_version_is_read(tmp_path: Path, open_spool: OpenSpool) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20)
    for i in range(3):
        spool.append(record(i))
    position = spool.read_batch(2)[-1][0]
    spool.close()
    (tmp_path / "cursor").write_text(f"{position.segment} {position.offset}\n")  # write-then-rename era

    reopened = open_spool(tmp_path, max_bytes=1 << 20)
    assert values(reopened) == [b"2"]
    reopened.ack(reopened.read_batch(1)[-1][0])  # the new line replaces the old one whole
    reopened.close()
    assert values(open_spool(tmp_path, max_bytes=1 << 20)) == []


def test_a_torn_cursor_replays_from_the_oldest_record_instead_of_skipping(
    tmp_path: Path, open_spool: OpenSpool
) -> None:
    spool = open_spool(tmp_path, max_bytes=1 << 20)
    for i in range(3):
        spool.append(record(i))
    spool.ack(spool.read_batch(1)[-1][0])
    spool.close()
    line = (tmp_path / "cursor").read_bytes()
    (tmp_path / "cursor").write_bytes(line[:30] + b"9" + line[31:])  # a digit changed, CRC kept

    assert values(open_spool(tmp_path, max_bytes=1 << 20)) == [b"0", b"1", b"2"]
