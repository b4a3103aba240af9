"""RecordReader: decode only the job's kinds, count and skip what does not decode."""

from __future__ import annotations

from dataclasses import dataclass, field

from consumers.records import RecordReader
from router_service.telemetry import event_codec
from tests.telemetry import helpers as th


@dataclass
class FakeRecord:
    """The fields of aiokafka's ConsumerRecord the reader uses."""

    value: bytes | None
    headers: list[tuple[str, bytes]]
    offset: int = 5
    timestamp: int = 1000
    topic: str = "t"
    partition: int = 0
    key: bytes = field(default=b"k")


def _record(kind: str, *, keep_headers: bool = True) -> FakeRecord:
    _, value, headers = event_codec.encode(th.event(th.bodies()[kind]), "json")
    return FakeRecord(value, headers if keep_headers else [])


def test_a_kind_the_job_reads_is_decoded_with_its_event_id() -> None:
    record = RecordReader(frozenset({"completion"})).read(_record("completion"))
    assert record.event is not None and record.event.kind == "completion"
    assert record.event_id == record.event.envelope.event_id
    assert (record.offset, record.timestamp_ms) == (5, 1000)


def test_other_kinds_are_skipped_on_the_header_without_decoding() -> None:
    reader = RecordReader(frozenset({"completion"}))
    garbage_with_header = FakeRecord(b"{not json", [("ce_type", b"com.llmrouter.attempt.v1")])
    for record in (_record("attempt"), garbage_with_header):
        skipped = reader.read(record)
        assert skipped.event is None and skipped.event_id == ""
    assert reader.decode_errors == 0  # the garbage was never decoded: not ours


def test_records_without_headers_are_decoded_to_learn_their_kind() -> None:
    reader = RecordReader(frozenset({"feedback"}))
    assert reader.read(_record("feedback", keep_headers=False)).event is not None
    assert reader.read(_record("decision", keep_headers=False)).event is None


def test_undecodable_records_are_counted_and_still_advance() -> None:
    reader = RecordReader(frozenset({"completion"}))
    bad = FakeRecord(b"\x00\x01", [("ce_type", b"com.llmrouter.completion.v1")], offset=9)
    record = reader.read(bad)
    assert (record.offset, record.event, reader.decode_errors) == (9, None, 1)
