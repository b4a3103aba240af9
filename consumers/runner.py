"""The consumer loop every aggregation job shares: poll, decode, aggregate, flush, then commit.

    getmany -> decode the job's kinds (records.py) -> PartitionProcessor.process (pure)
    every snapshot_interval_s: publish changed dimensions + checkpoints (sink.py), wait for the
    acks, THEN commit the offsets they cover; idle partitions re-publish their checkpoint
    (a heartbeat: only generated_at changes), so a live consumer always writes something

- At-least-once with exactly-once aggregates: see partition.py. A crash at any point loses only
  work that was never committed, and the next owner recomputes it from the last checkpoint.
- Catching up after a crash: each flush first writes the dedupe ids added since the last one to
  the job's dedupe topic (`<snapshot topic>.dedupe`, dedupe_log.py), so the next owner loads them
  and resumes at the checkpoint's offset instead of re-reading the 15-minute dedupe horizon.
  Without that topic (not created, `dedupe_log=False`) it re-reads the horizon, as before.
- Rebalances (rebalance.py): on revoke, flush and commit the revoked partitions and keep their
  state aside; on assign, reuse that state when a partition comes back (the eager protocol
  revokes everything on every rebalance), otherwise restore it from the snapshot topic
  (snapshot_store.py) and seek to where the checkpoint says. A partition whose restore failed is
  never processed: the runner stops with RunnerError.
- Shutdown: `stop()` only sets a flag (safe from a signal handler); the loop then leaves after at
  most one poll timeout, flushes and commits everything, and closes its clients. Cancelling
  `run()` is an abort: nothing more is flushed or committed, like a crash.
- One lock orders batch processing and flushes, because aiokafka runs the rebalance callbacks
  concurrently with the loop; it is never held around getmany or a commit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from consumers.aggregator import DimensionRecord, JsonDict
from consumers.dedupe import DedupeConfig
from consumers.jobs import DEFAULT_INPUT_TOPIC, Job
from consumers.kafka import KafkaOptions, TopicMissingError, ensure_topic, topic_partitions
from consumers.metrics import ConsumerMetrics, JobMetrics
from consumers.partition import BatchStats, PartitionProcessor, RestoredPartition
from consumers.rebalance import RebalanceHandler
from consumers.records import RecordReader
from consumers.sink import OutRecord, SinkError, SnapshotSink
from consumers.snapshot_store import SnapshotReader
from router_contract.snapshot_keys import CHECKPOINT_KEY, record_key
from router_contract.snapshot_records import SnapshotEncoding

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class RunnerConfig:
    input_topic: str = DEFAULT_INPUT_TOPIC
    snapshot_topic: str = ""  # "" -> the job's (llmrouter.<job>.v1)
    group_id: str = ""  # "" -> the job's (llmrouter-consumer-<job>)
    # Static group membership (KIP-345): a stable name per consumer instance (a StatefulSet pod
    # name). A member restarted under the same name takes its partitions back at once, instead of
    # waiting for the group to expire the dead member (the session timeout) and rebalance; the
    # job name is appended, so `consume all` gives each job its own. "" -> dynamic membership.
    group_instance_id: str = ""
    snapshot_interval_s: float = 5.0
    poll_timeout_ms: int = 500  # also bounds how long stop() takes to be noticed
    max_poll_records: int = 5_000
    # Fewer, bigger fetches: reading the embedded broker went from ~50k to ~140k records/s going
    # from aiokafka's 1 MiB to 16 MiB (bench/consumers.py); the total stays capped by fetch_max_bytes.
    max_partition_fetch_bytes: int = 8 << 20
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # How long the group waits for members to rejoin (revoke callbacks included). None: the
    # session timeout. Kafka clients send JoinGroup with the request timeout: keep that larger.
    rebalance_timeout_ms: int | None = None
    dedupe: DedupeConfig = dataclasses.field(default_factory=DedupeConfig)
    dedupe_log: bool = True  # write the dedupe index to <snapshot topic>.dedupe (when it exists)
    create_topics: bool = False  # dev/tests: create the snapshot topic (compacted) when missing
    # router.v1.Snapshot on the snapshot topic: protobuf (compact, fast to restore) or its proto3
    # JSON mapping (for kcat | jq). Readers take either, and the JSON written before the schema.
    snapshot_encoding: SnapshotEncoding = "protobuf"


class RunnerError(Exception):
    """The runner cannot go on safely (e.g. a partition's state could not be restored)."""


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    DONE = "done"


class ConsumerRunner:
    def __init__(
        self,
        job: Job,
        config: RunnerConfig,
        kafka: KafkaOptions,
        metrics: ConsumerMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.job = job
        self._config = config
        self._kafka = kafka
        self._clock = clock
        self._metrics = JobMetrics(metrics, job.name)
        self.snapshot_topic = config.snapshot_topic or job.snapshot_topic
        self.group_id = config.group_id or job.group_id
        self._reader = RecordReader(job.kinds)
        self._sink = SnapshotSink(
            kafka, self.snapshot_topic, f"llmrouter-consumer-{job.name}", encoding=config.snapshot_encoding
        )
        self._store = SnapshotReader(kafka, self.snapshot_topic)
        self.dedupe_topic = f"{self.snapshot_topic}.dedupe"
        self._log_sink = SnapshotSink(kafka, self.dedupe_topic, f"llmrouter-consumer-{job.name}-dedupe")
        self._log_store = SnapshotReader(kafka, self.dedupe_topic)
        self._logging = False  # set by _start: the dedupe topic exists and the config wants it
        self._consumer: Any = None
        self._processors: dict[int, PartitionProcessor] = {}
        self._parked: dict[int, PartitionProcessor] = {}  # revoked; reused if they come back
        self._flushed_offsets: dict[int, int] = {}
        self._published_at: dict[int, float] = {}  # clock time of each partition's last snapshot record
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None
        self._state = _State.NEW
        self._decode_errors_reported = 0
        self._records_seen = 0
        self._rate_mark = (0, time.monotonic())

    # --- lifecycle -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish: final flush and commit, then close. Safe from a signal handler."""
        self._stopping.set()

    async def run(self) -> None:
        if self._state is not _State.NEW:
            raise RuntimeError("a ConsumerRunner runs once; create a new one")
        self._state = _State.RUNNING
        try:
            await self._start()
            await self._loop()
            await self._flush(list(self._processors), "shutdown")
        finally:
            self._state = _State.DONE
            await self._close()

    @property
    def partitions(self) -> list[int]:
        """Input partitions owned right now."""
        return sorted(self._processors)

    def processor(self, partition: int) -> PartitionProcessor | None:
        return self._processors.get(partition)

    async def _start(self) -> None:
        await self._sink.start()
        if self._config.create_topics:
            await self._create_snapshot_topic()
        await self._sink.load_partitions()
        await self._store.start()
        if self._config.dedupe_log:
            await self._start_dedupe_log()
        # Read the state back while the group join runs (Tansu holds a join ~1 s): a restart
        # takes every partition back, and its restore then only reads what was written since.
        self._store.prefetch(self._sink.partitions)
        if self._logging:
            self._log_store.prefetch(self._log_sink.partitions)
        self._consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            group_instance_id=f"{self._config.group_instance_id}-{self.job.name}"
            if self._config.group_instance_id
            else None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._config.max_poll_records,
            session_timeout_ms=self._config.session_timeout_ms,
            heartbeat_interval_ms=self._config.heartbeat_interval_ms,
            rebalance_timeout_ms=self._config.rebalance_timeout_ms,
            max_partition_fetch_bytes=self._config.max_partition_fetch_bytes,
            client_id=f"llmrouter-consumer-{self.job.name}",
            **self._kafka.client_kwargs(),
        )
        self._consumer.subscribe([self._config.input_topic], listener=RebalanceHandler(self))
        await self._consumer.start()

    async def _create_snapshot_topic(self) -> None:
        # As many partitions as the input: a restore then reads exactly one output partition.
        await ensure_topic(self._kafka, self.snapshot_topic, await self._input_partitions(), compacted=True)

    async def _input_partitions(self) -> int:
        try:
            return await topic_partitions(self._sink.client, self._config.input_topic)
        except TopicMissingError:
            return 1

    async def _start_dedupe_log(self) -> None:
        await self._log_sink.start()
        if self._config.create_topics:
            await ensure_topic(self._kafka, self.dedupe_topic, await self._input_partitions(), compacted=True)
        try:
            await self._log_sink.load_partitions()
        except TopicMissingError:
            log.warning(
                "%s: no topic %s: a restart re-reads the dedupe horizon (minutes of records) instead "
                "of loading the dedupe index; create it like the snapshot topic (compacted)",
                self.job.name,
                self.dedupe_topic,
            )
            return
        await self._log_store.start()
        self._logging = True

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        closers = (self._store.stop, self._sink.stop, self._log_store.stop, self._log_sink.stop)
        for close in (consumer.stop if consumer else None, *closers):
            if close is None:
                continue
            try:
                await close()
            except Exception:  # closing must reach every client; a failure to close is only logged
                log.warning("%s: closing a Kafka client failed", self.job.name, exc_info=True)

    # --- the loop --------------------------------------------------------------------------------

    async def _loop(self) -> None:
        interval = self._config.snapshot_interval_s
        next_flush = self._clock() + interval
        while not self._stopping.is_set():
            self._raise_if_failed()
            batches = await self._consumer.getmany(
                timeout_ms=self._config.poll_timeout_ms, max_records=self._config.max_poll_records
            )
            if batches:
                await self._process(batches)
            if self._clock() >= next_flush:
                await self._flush(list(self._processors), "interval")
                self._report_rate()
                next_flush = self._clock() + interval
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise RunnerError(f"{self.job.name} consumer cannot continue: {self._failure}") from self._failure

    async def _process(self, batches: dict[Any, list[Any]]) -> None:
        stats = BatchStats()
        async with self._lock:
            for tp, messages in batches.items():
                processor = self._processors.get(tp.partition)
                if processor is None:
                    continue  # revoked while the fetch was in flight: its new owner reads them again
                processor.process([self._reader.read(message) for message in messages], stats)
                self._report_lag(tp, processor)
        self._report_batch(stats)

    # --- flush and commit ------------------------------------------------------------------------

    async def _flush(self, partitions: Iterable[int], trigger: str) -> bool:
        """Publish the partitions' changes and checkpoints, then commit. False when publishing failed.

        At the interval, an owned partition with nothing new whose last published record is older
        than the interval publishes a heartbeat instead: its last checkpoint again with a fresh
        `generated_at` (partition.py), nothing else, no commit. Readers judge a snapshot topic
        stale by its newest record; an idle consumer that is alive keeps it fresh this way.
        """
        started = time.perf_counter()
        async with self._lock:
            wanted = sorted(set(partitions))
            processors = self._unflushed(wanted)
            now = self._clock()
            heartbeats = self._heartbeats(wanted, processors, now) if trigger == "interval" else []
            if not processors and not heartbeats:
                return True
            if not processors:
                trigger = "heartbeat"  # its own label: flushes_total{trigger="interval"} stays data flushes
            # changes() before checkpoint(): the checkpoint closes the flush that publishes them.
            taken = [(p, p.changes(now), p.checkpoint(now)) for p in processors]
            records = [
                record
                for processor, changes, checkpoint in taken
                for record in _out_records(processor.partition, changes, checkpoint)
            ]
            records += heartbeats
            try:
                # The dedupe segments first: the checkpoints below say they are in the topic.
                await self._publish_dedupe_log(processors)
                await self._sink.publish(records)
            except SinkError as exc:
                for processor, changes, _ in taken:
                    processor.mark_dirty(change.key for change in changes)
                self._metrics.flush(trigger, "error")
                log.warning("%s: snapshot flush failed, retrying at the next flush: %s", self.job.name, exc)
                return False
            for processor, _, checkpoint in taken:
                processor.published(checkpoint)
            self._published_at.update((record.input_partition, now) for record in records)
            offsets = {self._tp(p.partition): p.next_offset for p in processors}
            self._flushed_offsets.update({p.partition: p.next_offset for p in processors})
        self._metrics.flush(trigger, "ok")
        self._metrics.flush_seconds.observe(time.perf_counter() - started)
        self._metrics.snapshot_records.inc(len(records))
        if offsets:
            await self._commit(offsets)
        return True

    async def _publish_dedupe_log(self, processors: Iterable[PartitionProcessor]) -> None:
        taken = [(processor, processor.dedupe_records()) for processor in processors]
        records = [
            OutRecord(record_key(record.key, processor.partition), record.value, processor.partition)
            for processor, log_records in taken
            for record in log_records
        ]
        if records:
            await self._log_sink.publish(records)
        for processor, log_records in taken:
            processor.dedupe_published(log_records)

    def _heartbeats(
        self, partitions: Iterable[int], flushing: Iterable[PartitionProcessor], now: float
    ) -> list[OutRecord]:
        """Checkpoint records of idle partitions that published nothing for an interval."""
        busy = {processor.partition for processor in flushing}
        due = now - self._config.snapshot_interval_s
        out = []
        for partition in partitions:
            processor = self._processors.get(partition)
            if processor is None or partition in busy or self._published_at.get(partition, -math.inf) > due:
                continue
            checkpoint = processor.heartbeat(now)
            if checkpoint is not None:
                out.append(OutRecord(record_key(CHECKPOINT_KEY, partition), checkpoint, partition))
        return out

    def _unflushed(self, partitions: Iterable[int]) -> list[PartitionProcessor]:
        # A partition without new records since its last flush has nothing new to say.
        out = []
        for partition in sorted(set(partitions)):
            processor = self._processors.get(partition)
            if processor is not None and processor.next_offset != self._flushed_offsets.get(partition):
                out.append(processor)
        return out

    async def _commit(self, offsets: dict[Any, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # The snapshot is durable already: a restart resumes from its checkpoint either way.
            self._metrics.commit_errors.inc()
            log.warning("%s: offset commit failed (next flush commits again): %r", self.job.name, exc)

    # --- rebalances (called by RebalanceHandler) -------------------------------------------------

    async def partitions_revoked(self, partitions: set[Any]) -> None:
        mine = [tp.partition for tp in partitions if tp.topic == self._config.input_topic]
        await self._flush(mine, "revoke")
        async with self._lock:
            for partition in mine:
                processor = self._processors.pop(partition, None)
                if processor is not None:
                    self._parked[partition] = processor
                self._metrics.forget_partition(partition)
            self._metrics.partitions.set(len(self._processors))

    async def partitions_assigned(self, partitions: set[Any]) -> None:
        consumer = self._consumer
        if consumer is None:  # a rebalance that completes while we close: nothing to take on
            return
        try:
            await self._take_on(
                consumer, sorted(tp.partition for tp in partitions if tp.topic == self._config.input_topic)
            )
        except Exception as exc:  # aiokafka would only log it: make the loop stop instead
            log.exception("%s: restoring partitions failed", self.job.name)
            self._failure = exc

    async def _take_on(self, consumer: Any, partitions: list[int]) -> None:
        started = time.perf_counter()
        kept = {p: self._parked.pop(p) for p in partitions if p in self._parked}
        restored = await self._restore([p for p in partitions if p not in kept])
        starts = {p: processor.seek_offset() for p, processor in restored.items()}
        beginnings = await self._beginnings(consumer, [p for p, start in starts.items() if start is None])
        async with self._lock:
            for partition, processor in kept.items():
                consumer.seek(self._tp(partition), processor.next_offset)
            for partition, start in starts.items():
                consumer.seek(self._tp(partition), beginnings[partition] if start is None else start)
                self._flushed_offsets[partition] = restored[partition].next_offset
            self._processors.update(kept)
            self._processors.update(restored)
            self._parked.clear()  # partitions now owned by others: their state is theirs
            self._metrics.partitions.set(len(self._processors))
        self._metrics.restored("kept", len(kept))
        self._metrics.restored("snapshot", len(restored))
        log.info(
            "%s: owns partitions %s (%d read back from %s, %d kept in memory; %.3f s)",
            self.job.name,
            partitions,
            len(restored),
            self.snapshot_topic,
            len(kept),
            time.perf_counter() - started,
        )

    async def _restore(self, partitions: list[int]) -> dict[int, PartitionProcessor]:
        if not partitions:
            return {}
        if self._logging:
            snapshots, logs = await asyncio.gather(
                self._store.read(partitions, self._sink.partitions),
                self._log_store.read(partitions, self._log_sink.partitions),
            )
        else:
            snapshots, logs = await self._store.read(partitions, self._sink.partitions), {}
        processors = {}
        for partition in partitions:
            processor = PartitionProcessor(
                self._config.input_topic,
                partition,
                self.job.new_aggregator(),
                self._config.dedupe,
                dedupe_log=self._logging,
            )
            restored = snapshots.get(partition, RestoredPartition())
            if self._logging:
                segments = [value for _, value in logs.get(partition, RestoredPartition()).dimensions]
                restored = dataclasses.replace(restored, dedupe_segments=segments)
            processor.restore(restored)
            processors[partition] = processor
        return processors

    async def _beginnings(self, consumer: Any, partitions: list[int]) -> dict[int, int]:
        if not partitions:
            return {}
        offsets = await consumer.beginning_offsets([self._tp(p) for p in partitions])
        return {tp.partition: int(offset) for tp, offset in offsets.items()}

    # --- metrics -------------------------------------------------------------------------------

    def _report_batch(self, stats: BatchStats) -> None:
        m = self._metrics
        m.records.inc(stats.records)
        m.counted.inc(stats.counted)
        for reason, dropped in stats.dropped.items():
            m.dropped[reason].inc(dropped)
        m.duplicates["redelivered"].inc(stats.redelivered)
        m.duplicates["event_id"].inc(stats.duplicates)
        new_errors = self._reader.decode_errors - self._decode_errors_reported
        if new_errors:
            m.decode_errors.inc(new_errors)
            self._decode_errors_reported = self._reader.decode_errors
        self._records_seen += stats.records

    def _report_lag(self, tp: Any, processor: PartitionProcessor) -> None:
        highwater = self._consumer.highwater(tp)
        if highwater is not None:
            processor.end_offset = highwater  # the snapshots' freshness says how far behind it is
            self._metrics.set_lag(tp.partition, max(0, highwater - processor.next_offset))

    def _report_rate(self) -> None:
        seen = self._records_seen
        last_seen, last_time = self._rate_mark
        now = time.monotonic()
        if now > last_time:
            self._metrics.records_per_second.set((seen - last_seen) / (now - last_time))
        self._rate_mark = (seen, now)

    def _tp(self, partition: int) -> Any:
        return TopicPartition(self._config.input_topic, partition)


def _out_records(partition: int, changes: Iterable[DimensionRecord], checkpoint: JsonDict) -> list[OutRecord]:
    """A partition's dimension records, then its checkpoint: the checkpoint must come last."""
    records = [OutRecord(record_key(change.key, partition), change.value, partition) for change in changes]
    records.append(OutRecord(record_key(CHECKPOINT_KEY, partition), checkpoint, partition))
    return records
