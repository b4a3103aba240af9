"""WriteAheadLog on a real spool: what is on disk when, what keep() counts, what trim() acks."""

from __future__ import annotations

from pathlib import Path

from router_service import domain
from router_service.telemetry import events as ev
from router_service.telemetry.publisher_metrics import DropReporter
from router_service.telemetry.spool import Spool, SpoolRecord
from router_service.telemetry.write_ahead import Pending, WriteAheadLog
from tests.telemetry import helpers as h


def _pending(value: bytes) -> Pending:
    return Pending(SpoolRecord("topic", b"req", value))


def _on_disk(spool: Spool) -> list[bytes]:
    return [record.value for _, record in spool.replay()]


def test_a_calls_decision_and_attempt_wait_for_its_terminal_event(tmp_path: Path) -> None:
    with Spool(tmp_path, 1 << 20, sync_segments=False) as spool:
        log = WriteAheadLog(spool, DropReporter(h.Metrics()), durable=True)
        decision, attempt, end = _pending(b"decision"), _pending(b"attempt"), _pending(b"completion")

        log.queued(decision, ev.DecisionEvent(h.decision()))
        log.queued(attempt, ev.AttemptEvent(0, h.attempt(), "m"))
        assert _on_disk(spool) == [] and decision.position is None
        log.queued(end, h.completion())

        assert _on_disk(spool) == [b"decision", b"attempt", b"completion"]
        assert [p.position for p in (decision, attempt, end)] == [pos for pos, _ in spool.replay()]


def test_a_late_billed_attempt_is_written_at_once(tmp_path: Path) -> None:
    billed = h.attempt(outcome=domain.AttemptOutcome.SUCCESS, unused_usage=domain.Usage(10, 5, 0))
    with Spool(tmp_path, 1 << 20, sync_segments=False) as spool:
        log = WriteAheadLog(spool, DropReporter(h.Metrics()), durable=True)
        log.queued(_pending(b"late"), ev.AttemptEvent(1, billed, "m", hedged=True))
        assert _on_disk(spool) == [b"late"]


def test_without_durable_nothing_is_written_until_kept(tmp_path: Path) -> None:
    with Spool(tmp_path, 1 << 20, sync_segments=False) as spool:
        log = WriteAheadLog(spool, DropReporter(h.Metrics()), durable=False)
        pending = _pending(b"completion")
        log.queued(pending, h.completion())
        log.trim([pending])
        assert _on_disk(spool) == []

        assert log.keep([pending]) == 1
        assert _on_disk(spool) == [b"completion"]


def test_keep_writes_held_events_first_and_counts_what_does_not_fit(tmp_path: Path) -> None:
    metrics = h.Metrics()
    with Spool(tmp_path, 200, sync_segments=False) as spool:
        log = WriteAheadLog(spool, DropReporter(metrics), durable=True)
        held = _pending(b"decision")
        log.queued(held, ev.DecisionEvent(h.decision()))

        kept = log.keep([held, _pending(b"x" * 300)])

        assert kept == 1 and _on_disk(spool) == [b"decision"]
        assert metrics.value("llmrouter_events_dropped_total", reason="spool_full") == 1


def test_trim_acks_up_to_the_last_delivered_event_the_log_holds(tmp_path: Path) -> None:
    with Spool(tmp_path, 1 << 20, sync_segments=False) as spool:
        log = WriteAheadLog(spool, DropReporter(h.Metrics()), durable=True)
        first, second, third = _pending(b"one"), _pending(b"two"), _pending(b"three")
        for pending in (first, second, third):
            log.queued(pending, h.completion())

        log.trim([first, second, _pending(b"never written")])

        assert _on_disk(spool) == [b"three"]
