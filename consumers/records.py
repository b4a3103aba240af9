"""Kafka consumer records -> InputRecords for one job, decoding only the event kinds it reads.

The `ce_type` header names the kind without decoding the value, so a costs consumer decodes
completions only and skips decisions and attempts for the price of a header lookup. A record
without the header is decoded to find out. A record that does not decode is counted and skipped:
its offset still advances, so one bad record can never wedge a partition.
"""

from __future__ import annotations

import logging
from typing import Any

from consumers.decode import DecodeError, decode
from consumers.partition import InputRecord
from router_contract.event_records import kind_of

log = logging.getLogger(__name__)
_LOGGED_ERRORS = 10  # then one log line per 1000 errors; the metric counts them all


class RecordReader:
    def __init__(self, kinds: frozenset[str]) -> None:
        self._kinds = kinds
        self.decode_errors = 0

    def read(self, record: Any) -> InputRecord:
        kind = kind_of(record.headers)
        if kind != "unknown" and kind not in self._kinds:
            return InputRecord(record.offset, record.timestamp, "", None)
        try:
            event = decode(record.value, record.headers)
        except DecodeError as exc:
            self._report(record, exc)
            return InputRecord(record.offset, record.timestamp, "", None)
        if event is None or event.kind not in self._kinds:
            return InputRecord(record.offset, record.timestamp, "", None)
        return InputRecord(record.offset, record.timestamp, event.envelope.event_id, event)

    def _report(self, record: Any, exc: DecodeError) -> None:
        self.decode_errors += 1
        if self.decode_errors <= _LOGGED_ERRORS or self.decode_errors % 1000 == 0:
            log.warning(
                "skipping undecodable record %s[%s]@%s (%d so far): %s",
                record.topic,
                record.partition,
                record.offset,
                self.decode_errors,
                exc,
            )
