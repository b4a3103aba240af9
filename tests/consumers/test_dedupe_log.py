"""The dedupe log: a restart loads the dedupe index instead of re-reading the dedupe horizon, and
counts exactly what an uninterrupted run counts (issue 19, item 2).

The crash/restore property of test_partition.py, with the log: each flush writes the log's
segments, then the dimensions, then the checkpoint, and a crash may cut it anywhere (after some
segments, after some dimensions); a restore loads what was written and seeks to `seek_offset()`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import events as ce
from consumers.aggregator import Aggregator
from consumers.costs.aggregate import CostsAggregator
from consumers.dedupe import DedupeConfig, DedupeIndex, fingerprint
from consumers.dedupe_log import DedupeLog, decode, encode, entries_below, segment_key
from consumers.partition import BatchStats, InputRecord, PartitionProcessor, RestoredPartition
from consumers.quality.aggregate import QualityAggregator
from tests.consumers.helpers import consumer_event
from tests.consumers.test_partition import (
    T0,
    Topic,
    _cost_records,
    _feed,
    _quality_records,
    _state,
    _uninterrupted,
)


def _wire(value: Any) -> Any:
    return None if value is None else json.loads(json.dumps(value))


class Store:
    """The snapshot topic and the dedupe topic of one partition, as compaction keeps them."""

    def __init__(self) -> None:
        self.snapshots: Topic = {}
        self.log: Topic = {}

    def restored(
        self, new_aggregator: Callable[[], Aggregator], *, logged: bool = True
    ) -> PartitionProcessor:
        processor = PartitionProcessor("events", 0, new_aggregator(), DedupeConfig(), dedupe_log=logged)
        dimensions = [(k, v) for k, v in self.snapshots.items() if k != "_checkpoint" and v is not None]
        segments = [value for value in self.log.values() if value is not None]
        processor.restore(RestoredPartition(self.snapshots.get("_checkpoint"), dimensions, segments))
        return processor

    def flush(self, processor: PartitionProcessor, now: float, cut: tuple[str, int] | None = None) -> None:
        """The runner's flush order; `cut`: crash after that many records of that stage."""
        log_records = processor.dedupe_records()
        changes = processor.changes(now)
        checkpoint = processor.checkpoint(now)
        for record in log_records[: cut[1] if cut and cut[0] == "log" else None]:
            self.log[record.key] = _wire(record.value)
        if cut and cut[0] == "log":
            return
        processor.dedupe_published(log_records)
        for change in changes[: cut[1] if cut else None]:
            self.snapshots[change.key] = _wire(change.value)
        if cut:
            return
        self.snapshots["_checkpoint"] = _wire(checkpoint)
        processor.published(checkpoint)


def _interrupted(
    records: Sequence[InputRecord], new_aggregator: Callable[[], Aggregator], rng: random.Random
) -> tuple[Topic, list[int]]:
    """Random flushes, crashes and crashes inside a flush; the offsets each restore sought to."""
    store = Store()
    processor = store.restored(new_aggregator)
    position, seeks = 0, []
    while position < len(records):
        step = rng.randint(1, 80)
        _feed(processor, records[position : position + step], None)
        position += step
        action = rng.random()
        if action < 0.4:
            store.flush(processor, T0)
        elif action < 0.6:
            if action < 0.5:
                store.flush(processor, T0, cut=(rng.choice(("log", "dimensions")), rng.randint(0, 3)))
            processor = store.restored(new_aggregator)
            position = processor.seek_offset() or 0
            seeks.append(position)
    store.flush(processor, T0)
    return store.snapshots, seeks


@pytest.mark.parametrize("seed", range(12))
def test_cost_state_after_crashes_with_the_log_equals_an_uninterrupted_run(seed: int) -> None:
    records = _cost_records(seed)
    expected = _state(_uninterrupted(records, CostsAggregator))
    state, _ = _interrupted(records, CostsAggregator, random.Random(seed))
    assert _state(state) == expected


@pytest.mark.parametrize("seed", range(8))
def test_quality_state_after_crashes_with_the_log_equals_an_uninterrupted_run(seed: int) -> None:
    """Quality still replays its join index; the dedupe ids it re-reads are not duplicates of themselves."""
    records = _quality_records(seed)
    expected = _state(_uninterrupted(records, QualityAggregator))
    state, _ = _interrupted(records, QualityAggregator, random.Random(seed))
    assert expected and _state(state) == expected


def test_a_restore_with_the_log_seeks_to_the_checkpoint_not_to_the_dedupe_horizon() -> None:
    records = _cost_records(4, 200)
    store = Store()
    first = store.restored(CostsAggregator)
    _feed(first, records, 0)
    store.flush(first, T0)
    checkpoint = store.snapshots["_checkpoint"]
    assert checkpoint["replay_from"] == 0  # the whole dedupe horizon, for a consumer without the log
    assert checkpoint["resume_from"] == checkpoint["source"]["offset"] == 200

    restored = store.restored(CostsAggregator)
    assert restored.seek_offset() == 200
    assert store.restored(CostsAggregator, logged=False).seek_offset() == 0  # the old way still works


def test_a_resend_after_a_restart_is_still_a_duplicate() -> None:
    """What the replay was for: an event sent again after the restart is recognised from the log."""
    event = consumer_event(ce.Completion("p", "m", cost_nanos_usd=5), event_id="resent")
    store = Store()
    first = store.restored(CostsAggregator)
    _feed(first, [InputRecord(0, 1000, "resent", event)], 0)
    store.flush(first, T0)
    restored = store.restored(CostsAggregator)
    stats = BatchStats()
    restored.process([InputRecord(1, 2000, "resent", event)], stats)
    assert (stats.counted, stats.duplicates) == (0, 1)


def test_segment_entries_past_the_checkpoint_are_dropped_at_restore() -> None:
    """A crash after the segments, before the checkpoint: those records are read again, and must
    count, not be taken for duplicates of themselves... or of the lost flush."""
    records = _cost_records(5, 60)
    store = Store()
    processor = store.restored(CostsAggregator)
    _feed(processor, records[:30], 0)
    store.flush(processor, T0)
    _feed(processor, records[30:], None)
    store.flush(processor, T0, cut=("dimensions", 0))  # segments for 30..59 written, no checkpoint
    restored = store.restored(CostsAggregator)
    assert restored.seek_offset() == 30
    _feed(restored, records, 30)
    store.flush(restored, T0)
    assert _state(store.snapshots) == _state(_uninterrupted(records, CostsAggregator))


def test_forgotten_segments_get_tombstones() -> None:
    config = DedupeConfig(horizon_s=1e9, max_ids=10)
    processor = PartitionProcessor("events", 0, CostsAggregator(), config, dedupe_log=True)
    store = Store()
    records = [InputRecord(o, 0, f"id-{o}", consumer_event(ce.Completion("p", "m"))) for o in range(40)]
    for start in range(0, 40, 10):
        _feed(processor, records[start : start + 10], None)
        store.flush(processor, T0)
    live = {key for key, value in store.log.items() if value is not None}
    assert live == {segment_key(30)}  # the index keeps offsets 30..39 only
    assert set(store.log) == {segment_key(o) for o in (0, 10, 20, 30)}


def test_the_same_record_read_again_is_not_its_own_duplicate() -> None:
    index = DedupeIndex()
    assert index.add("a", 5, 0)
    assert index.add("a", 5, 0)  # the record at offset 5 again
    assert not index.add("a", 6, 0)  # another record with that id


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**62), st.integers(-(2**62), 2**62)),
        min_size=1,
        max_size=50,
    )
)
def test_segments_round_trip(entries: list[tuple[int, int, int]]) -> None:
    value = _wire(encode(entries))
    assert decode(value) == entries


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=8), max_size=40), st.integers(0, 60))
def test_a_restored_index_equals_the_index_it_logged(ids: list[str], cut: int) -> None:
    """Entries below the checkpoint's offset, loaded, give the index the ids it had there."""
    logged = DedupeIndex(logged=True)
    log = DedupeLog()
    for offset, event_id in enumerate(ids):
        logged.add(event_id, offset, offset)
    records = log.take(logged.unlogged, logged.replay_from())
    segments = [record.value for record in records if record.value is not None]
    restored = DedupeIndex()
    restored.load(entries_below(segments, cut), logged.max_timestamp_ms)
    for offset, event_id in enumerate(ids):
        first_offset = ids.index(event_id)
        if first_offset < cut:
            assert restored.add(event_id, offset, 0) == (offset == first_offset)


def test_fingerprints_are_stable() -> None:
    # A restore reads fingerprints another process wrote: they must not depend on PYTHONHASHSEED.
    assert fingerprint("a") == 0x2F42665B399EF840  # blake2b-64, little-endian: not hash()
