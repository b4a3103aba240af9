"""The publisher's write-ahead log: which queued events go to the spool when, and where they are.

With `durable` (publisher.py, Durability) every event is in the spool, flushed to the OS (one
write()), before the call that published it answers, so that a router killed with events in the
sender's linger leaves them in the page cache for the next start to replay. A call's decision
and attempt events are held (queued, but not written yet) until its completion or error event,
which writes them together with whatever else is held in one write(): one write per call
instead of three. Every other event is written at once, with whatever is held. The sender calls
`write_held()` before it takes a batch, so every record it sends has its place in the log, in
queue order, and `trim()` after a delivery acks the log up to the last of them.

The same writer spools events the queue cannot take (spool mode, a failed round, stop): `keep()`
writes those the log does not hold yet, counting a full or unwritable spool as a drop. A failed
write of a queued event is not a drop: it stays in the queue and is sent from memory, only not
crash-safe. Write failures are logged on the edge (with `durable`, a broken disk would otherwise
log once per call).

    log = WriteAheadLog(spool, drops, durable=True)
    pending = Pending(record)
    queue.put(pending)
    log.queued(pending, event.body)  # on disk when this returns, unless held for its call
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from router_service.telemetry.events import AttemptEvent, DecisionEvent
from router_service.telemetry.publisher_metrics import DropReporter
from router_service.telemetry.spool import Spool, SpoolPosition, SpoolRecord

__all__ = ["Pending", "WriteAheadLog"]

log = logging.getLogger(__name__)


class Pending:
    """An encoded event waiting for the sender, and where the log holds it (None: not in the
    spool, because `durable` is off, the event came before start(), its write failed, or it is
    still held for its call's terminal event)."""

    __slots__ = ("position", "record")

    def __init__(self, record: SpoolRecord, position: SpoolPosition | None = None) -> None:
        self.record = record
        self.position = position


# The events a call publishes before its completion or error, which the call's terminal event
# writes to the log with it. A hedge loser's attempt that arrives after its call answered,
# carrying what the upstream billed, is written at once like any other event.
_HELD_FOR_TERMINAL = (DecisionEvent, AttemptEvent)


def _held_for_terminal(body: object) -> bool:
    return isinstance(body, _HELD_FOR_TERMINAL) and not (
        isinstance(body, AttemptEvent) and body.attempt.unused_usage is not None
    )


class WriteAheadLog:
    """Writes queued events to the spool before their call answers (with `durable`), spools what
    the queue cannot take, and trims what was delivered."""

    __slots__ = ("_drops", "_durable", "_spool", "_unlogged", "_writable")

    def __init__(self, spool: Spool, drops: DropReporter, *, durable: bool) -> None:
        self._spool = spool
        self._drops = drops
        self._durable = durable
        # Queued events not in the log yet, in publish order (a suffix of the queue): written
        # together by the next terminal event, other event, or the sender's next take.
        self._unlogged: list[Pending] = []
        self._writable = True  # the last spool write worked; failures are logged on the edge

    def queued(self, pending: Pending, body: object) -> None:
        """`pending` (of an event with this body) was queued: with `durable`, write it now
        (with whatever is held) unless it waits for its call's terminal event."""
        if self._durable:
            self._unlogged.append(pending)
            if not _held_for_terminal(body):
                self.write_held()  # before this call answers

    def write_held(self) -> None:
        """Write the queued events that are not in the log yet, in one write(). Those that do
        not fit or whose write fails stay in the queue, sent from memory, only not crash-safe."""
        unlogged = self._unlogged
        if not unlogged:
            return
        self._unlogged = []
        try:
            positions = self._spool.write_many([entry.record for entry in unlogged])
        except OSError:
            self._on_error()
            return
        self._writable = True
        for entry, position in zip(unlogged, positions, strict=True):
            entry.position = position

    def keep(self, pending: Sequence[Pending]) -> int:
        """Leave these events to a spool replay: write those the log does not hold yet (with
        `durable`, it holds them all but the few whose write failed, or that came before
        start), behind the held events, which are older. Returns how many the spool holds;
        the others are counted as drops (spool full or unwritable)."""
        self.write_held()
        kept = 0
        for entry in pending:
            if entry.position is None and self._append(entry.record) is None:
                continue
            kept += 1
        return kept

    def trim(self, delivered: Sequence[Pending]) -> None:
        """Delivered: trim the log up to the last of them that it holds. Everything the log
        holds before it was delivered too (the log and the queue share one order)."""
        if not self._durable:
            return
        last = next((entry.position for entry in reversed(delivered) if entry.position is not None), None)
        if last is not None:
            self._spool.ack(last)

    def _append(self, record: SpoolRecord) -> SpoolPosition | None:
        """Append one record; None (counted as a drop) if the spool is full or cannot be written."""
        try:
            position = self._spool.write(record)
        except OSError:
            self._on_error()
            self._drops.drop("spool_error")
            return None
        self._writable = True
        if position is None:
            self._drops.drop("spool_full")
        return position

    def _on_error(self) -> None:
        if self._writable:  # on the edge: with `durable` this runs once per call
            log.exception("cannot write the event spool")
        self._writable = False
