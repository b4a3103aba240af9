"""One input partition's processing: offsets, deduplication, replay after a restore, checkpoints.

Pure code; the runner feeds it decoded records and publishes what it returns.

Why restarts and rebalances never double count:
- The aggregate state of a partition is published to the job's snapshot topic: one record per
  dimension, each carrying the input offset its state covers, then one checkpoint record with
  the offset the whole flush covers (`next_offset`). Consumer-group offsets are committed after
  that, for lag monitoring and standard tooling; the checkpoint, not the group offset, is the
  source of truth, because it is the one written together with the state it describes.
- On assignment the runner restores the partition from those records and seeks to
  `replay_from`. Records below `next_offset` are already in the restored state: they only
  rebuild the lookup state (the dedupe index, the quality join map) and count as redelivered.
  From `next_offset` on, records are counted, each dimension skipping records below its own
  covered offset (restore_gate.py: a crash between dimension records and the checkpoint).
- A record with an event_id seen before in this partition is a publisher resend and is skipped
  (dedupe.py).
- With a dedupe log (dedupe_log.py), each flush writes the ids added since the last one before
  its checkpoint, and the checkpoint says so (`dedupe.logged`); a restore then loads them and
  seeks to `resume_from` (the checkpoint's offset, or the oldest record the aggregator's own
  lookup state needs) instead of `replay_from` (which also re-reads the dedupe horizon). An older
  checkpoint, or a job without its dedupe topic, falls back to `replay_from`.
- An idle partition's heartbeat (`heartbeat`) re-publishes its last published checkpoint with a
  new `generated_at` (and freshness) only: a restore from it is the restore from the checkpoint
  it repeats.
- Every published value says how fresh it is (`freshness`: the event-time watermark, the input
  records not counted yet, and the phase: replaying records counted before a restore, catching
  up, or live), so readers can tell a catching-up rollup from a final one (router.v1.Snapshot).

Counting is therefore a deterministic function of the partition's records, whoever processes
them, however often: at-least-once delivery, exactly-once aggregates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from consumers.aggregator import Aggregator, DimensionRecord, JsonDict
from consumers.dedupe import DedupeConfig, DedupeIndex
from consumers.dedupe_log import DedupeLog, LogRecord, entries_below
from consumers.events import Event
from router_contract.snapshot_records import PHASE_CATCHING_UP, PHASE_LIVE, PHASE_REPLAYING
from router_contract.windows import rfc3339

CHECKPOINT_KIND = "checkpoint"
# A partition with records not counted yet whose watermark is older than this, by the flush's
# wall clock, is catching up: its sums read short. Router events reach the consumers within a
# poll plus a snapshot interval (seconds); an idle partition (nothing unread) is live however old
# its watermark.
CATCHING_UP_BEHIND_S = 30.0


@dataclass(frozen=True, slots=True)
class InputRecord:
    offset: int
    timestamp_ms: int  # the Kafka record timestamp (producer send time)
    event_id: str
    event: Event | None  # None: a kind this job does not read, or undecodable; only the offset counts


@dataclass(slots=True)
class BatchStats:
    records: int = 0
    counted: int = 0
    redelivered: int = 0  # below the offset the state covers: counted before a restart/rebalance
    duplicates: int = 0  # same event_id as an earlier record: a publisher resend
    late: int = 0  # not counted (older than every window the job keeps, or another reason)
    dropped: dict[str, int] = field(default_factory=dict)  # the same, by reason (metrics.DROP_REASONS)


@dataclass(frozen=True, slots=True)
class RestoredPartition:
    """What the snapshot topic holds for one input partition."""

    checkpoint: JsonDict | None = None
    dimensions: Sequence[tuple[str, JsonDict]] = field(default_factory=tuple)
    # The partition's dedupe segments; None: no dedupe log was read (the job has none).
    dedupe_segments: Sequence[JsonDict] | None = None


class PartitionProcessor:
    def __init__(
        self,
        topic: str,
        partition: int,
        aggregator: Aggregator,
        dedupe: DedupeConfig,
        *,
        dedupe_log: bool = False,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.aggregator = aggregator
        self._dedupe = DedupeIndex(dedupe, logged=dedupe_log)
        self._log = DedupeLog() if dedupe_log else None
        self.next_offset = 0  # first offset not yet counted
        self._replay_from: int | None = None  # None: no checkpoint, start at the beginning
        # The newest checkpoint known to be in the snapshot topic (restored or acknowledged).
        self._published_checkpoint: JsonDict | None = None
        # The input partition's end offset, as the runner last saw it (None: not known).
        self.end_offset: int | None = None
        self._read_to = 0  # one past the highest offset processed (replays included)

    def restore(self, restored: RestoredPartition) -> None:
        checkpoint = restored.checkpoint
        segments = restored.dedupe_segments
        if self._log is not None and segments is not None:
            self._log.restored(segments)  # tombstoned later, whatever this restore uses of them
        if checkpoint is not None:
            self.next_offset = int(checkpoint["source"]["offset"])
            self._replay_from = int(checkpoint["replay_from"])
            dedupe = checkpoint["dedupe"]
            self._dedupe.max_timestamp_ms = int(dedupe["max_timestamp_ms"])
            if self._log is not None and segments is not None and dedupe.get("logged") is True:
                self._dedupe.load(entries_below(segments, self.next_offset), int(dedupe["max_timestamp_ms"]))
                self._replay_from = int(checkpoint["resume_from"])
            self.aggregator.restore_meta(checkpoint["state"])
            self._published_checkpoint = checkpoint
        for key, value in restored.dimensions:
            self.aggregator.restore(key, value, int(value["source"]["offset"]))
        # Reading resumes at seek_offset(): what lies between it and next_offset is a replay.
        self._read_to = self._replay_from or 0

    def seek_offset(self) -> int | None:
        """Where to read from right after `restore` (None: the beginning of the partition).

        A processor kept across a rebalance resumes at `next_offset` instead.
        """
        return self._replay_from

    def process(self, records: Iterable[InputRecord], stats: BatchStats) -> None:
        aggregator = self.aggregator
        for record in records:
            stats.records += 1
            self._read_to = max(self._read_to, record.offset + 1)
            event = record.event
            if record.offset < self.next_offset:
                stats.redelivered += 1
                if event is not None and self._is_new(record):
                    aggregator.index(event, record.offset)
                continue
            self.next_offset = record.offset + 1
            if event is None:
                continue
            if not self._is_new(record):
                stats.duplicates += 1
            elif (outcome := aggregator.apply(event, record.offset)) is True:
                stats.counted += 1
            else:
                stats.late += 1
                reason = outcome or "late"  # False: too late for any window
                stats.dropped[reason] = stats.dropped.get(reason, 0) + 1

    def _is_new(self, record: InputRecord) -> bool:
        # An event without an id cannot be deduplicated (the router always sets one).
        return not record.event_id or self._dedupe.add(record.event_id, record.offset, record.timestamp_ms)

    def changes(self, now_s: float) -> list[DimensionRecord]:
        """Changed dimensions, each stamped with the offset it covers, ready to publish."""
        source = self._source()
        generated_at = rfc3339(now_s)
        freshness = self.freshness(now_s)
        return [
            DimensionRecord(change.key, _stamped(change.value, source, generated_at, freshness))
            for change in self.aggregator.changes(now_s)
        ]

    def freshness(self, now_s: float) -> JsonDict:
        """How current the state is now: watermark, input records not counted yet, phase."""
        watermark_s = float(self.aggregator.meta().get("watermark_s", 0.0))
        lag = 0 if self.end_offset is None else max(0, self.end_offset - self.next_offset)
        if self._read_to < self.next_offset:
            phase = PHASE_REPLAYING  # re-reading what the restored checkpoint already counts
        elif lag and now_s - watermark_s > CATCHING_UP_BEHIND_S:
            phase = PHASE_CATCHING_UP
        else:
            phase = PHASE_LIVE
        return {"phase": phase, "lag_count": lag, "watermark_s": watermark_s}

    def checkpoint(self, now_s: float) -> JsonDict:
        """The record that closes a flush: everything below next_offset is in the published state.

        With a dedupe log it must follow `dedupe_records()` of the same flush: `logged` says the
        segments published before it hold every id of the index.
        """
        starts = (self.next_offset, self.aggregator.index_start())
        resume = min(start for start in starts if start is not None)
        dedupe_start = self._dedupe.replay_from()
        checkpoint: JsonDict = {
            "kind": CHECKPOINT_KIND,
            "source": self._source(),
            "generated_at": rfc3339(now_s),
            "freshness": self.freshness(now_s),
            "replay_from": resume if dedupe_start is None else min(resume, dedupe_start),
            "dedupe": {"max_timestamp_ms": self._dedupe.max_timestamp_ms},
            "state": self.aggregator.meta(),
        }
        if self._log is not None:
            checkpoint["dedupe"]["logged"] = True
            checkpoint["resume_from"] = resume
        return checkpoint

    def dedupe_records(self) -> list[LogRecord]:
        """The dedupe log's records of this flush (none without a log); they precede the checkpoint."""
        if self._log is None:
            return []
        return self._log.take(self._dedupe.unlogged, self._dedupe.replay_from())

    def dedupe_published(self, records: list[LogRecord]) -> None:
        """The broker acknowledged `dedupe_records()`: those entries are logged."""
        if self._log is not None:
            self._log.published(records)
            self._dedupe.unlogged.clear()  # the flush holds the runner's lock: nothing was added since

    def published(self, checkpoint: JsonDict) -> None:
        """The broker acknowledged `checkpoint` (and the flush it closes): heartbeats repeat it."""
        self._published_checkpoint = checkpoint

    def heartbeat(self, now_s: float) -> JsonDict | None:
        """The last published checkpoint again, only `generated_at` renewed: an idle partition's proof
        of life. None when the partition has counted records no flush has published yet (then
        only a flush may write its checkpoint).

        Not `checkpoint(now_s)`: right after a restore the replay is still rebuilding the dedupe
        index, and a checkpoint computed then could name a later `replay_from` than the state
        needs. A partition that never published anything and counted nothing repeats the empty
        state (offset 0), which restores to what no checkpoint at all restores to.
        """
        last = self._published_checkpoint
        if last is None:
            return self.checkpoint(now_s) if self.next_offset == 0 else None
        if int(last["source"]["offset"]) != self.next_offset:
            return None
        return {**last, "generated_at": rfc3339(now_s), "freshness": self.freshness(now_s)}

    def mark_dirty(self, keys: Iterable[str]) -> None:
        self.aggregator.mark_dirty(keys)

    def _source(self) -> JsonDict:
        return {"topic": self.topic, "partition": self.partition, "offset": self.next_offset}


def _stamped(
    value: JsonDict | None, source: JsonDict, generated_at: str, freshness: JsonDict
) -> JsonDict | None:
    if value is None:
        return None
    return {**value, "generated_at": generated_at, "source": source, "freshness": freshness}
