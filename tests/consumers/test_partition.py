"""PartitionProcessor: redelivery, publisher duplicates, and crash/restore equivalence.

The property that matters: however a partition's processing is cut (crash before a flush, crash
between the dimension records and the checkpoint of a flush, rebalance), restoring from what was
published and replaying from the checkpoint's `replay_from` ends in exactly the state one
uninterrupted processor reaches.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from consumers import events as ce
from consumers.aggregator import Aggregator
from consumers.costs.aggregate import CostsAggregator
from consumers.dedupe import DedupeConfig
from consumers.partition import BatchStats, InputRecord, PartitionProcessor, RestoredPartition
from consumers.quality.aggregate import QualityAggregator
from tests.consumers.helpers import consumer_event

T0 = 1_795_000_000.0
Topic = dict[str, Any]  # the latest value per key, like a compacted topic


def _wire(value: Any) -> Any:
    return None if value is None else json.loads(json.dumps(value))


def _flush(processor: PartitionProcessor, topic: Topic, now: float, *, cut_after: int | None = None) -> None:
    """Publish a flush; with cut_after, crash after that many dimension records (no checkpoint)."""
    changes = processor.changes(now)
    for change in changes[:cut_after]:
        topic[change.key] = _wire(change.value)
    if cut_after is None:
        checkpoint = processor.checkpoint(now)
        topic["_checkpoint"] = _wire(checkpoint)
        processor.published(checkpoint)


def _heartbeat(processor: PartitionProcessor, topic: Topic, now: float) -> None:
    """What the runner publishes for an idle partition at the interval (nothing when it is not idle)."""
    checkpoint = processor.heartbeat(now)
    if checkpoint is not None:
        topic["_checkpoint"] = _wire(checkpoint)


def _restored(topic: Topic, new_aggregator: Callable[[], Aggregator]) -> PartitionProcessor:
    processor = PartitionProcessor("events", 0, new_aggregator(), DedupeConfig())
    dimensions = [(key, value) for key, value in topic.items() if key != "_checkpoint" and value is not None]
    processor.restore(RestoredPartition(topic.get("_checkpoint"), dimensions))
    return processor


def _feed(processor: PartitionProcessor, records: Sequence[InputRecord], start: int | None) -> BatchStats:
    stats = BatchStats()
    processor.process([record for record in records if record.offset >= (start or 0)], stats)
    return stats


def _state(topic: Topic) -> dict[str, Any]:
    """Dimension values without the fields that say when and up to where they were written."""
    return {
        key: {k: v for k, v in value.items() if k not in ("generated_at", "source", "freshness")}
        for key, value in topic.items()
        if key != "_checkpoint" and value is not None
    }


def _cost_records(seed: int, count: int = 400) -> list[InputRecord]:
    rng = random.Random(seed)
    records: list[InputRecord] = []
    completions: list[ce.Event] = []
    for offset in range(count):
        time_s = T0 + offset * 1.5  # ten minutes: minute windows roll, old dimensions expire
        roll = rng.random()
        if roll < 0.2:
            event = None  # another kind: only the offset counts
        elif roll < 0.3 and completions:
            event = rng.choice(completions)  # a publisher resend: same event_id, new offset
        else:
            body = ce.Completion(
                rng.choice(("p1", "p2")),
                rng.choice(("m1", "m2", "m3")),
                rng.randint(1, 999),
                rng.randint(1, 999),
                rng.randint(0, 9),
                rng.randint(1, 10**12),
            )
            event = consumer_event(
                body,
                event_id=f"e{offset}",
                time_s=time_s,
                team=rng.choice(("a", "b", f"short-lived-{offset // 50}")),
                tags={"f": rng.choice(("x", "y"))},
            )
            completions.append(event)
        event_id = event.envelope.event_id if event else ""
        records.append(InputRecord(offset, int(time_s * 1000), event_id, event))
    return records


def _quality_records(seed: int, requests: int = 150) -> list[InputRecord]:
    rng = random.Random(seed)
    events: list[ce.Event] = []
    for i in range(requests):
        request_id = f"r{i}"
        time_s = T0 + i * 10
        task = rng.choice(("chat", "code"))
        model = rng.choice(("m1", "m2"))
        events.append(
            consumer_event(ce.Decision(task), event_id=f"d{i}", time_s=time_s, request_id=request_id)
        )
        events.append(
            consumer_event(ce.Completion("p", model), event_id=f"c{i}", time_s=time_s, request_id=request_id)
        )
        if rng.random() < 0.7:
            feedback = ce.Feedback(round(rng.random(), 3))
            late = rng.randint(0, 3)  # feedback may come a few requests later
            events.append(
                consumer_event(feedback, event_id=f"f{i}", time_s=time_s + late, request_id=request_id)
            )
    rng.shuffle(events[len(events) // 2 :])  # the second half out of order: feedback before its request
    return [
        InputRecord(offset, int(e.envelope.event_time_s * 1000), e.envelope.event_id, e)
        for offset, e in enumerate(events)
    ]


def _uninterrupted(records: Sequence[InputRecord], new_aggregator: Callable[[], Aggregator]) -> Topic:
    processor = PartitionProcessor("events", 0, new_aggregator(), DedupeConfig())
    topic: Topic = {}
    _feed(processor, records, 0)
    _flush(processor, topic, now=T0)
    return topic


def _interrupted(
    records: Sequence[InputRecord], new_aggregator: Callable[[], Aggregator], rng: random.Random
) -> Topic:
    """Process with random flushes, heartbeats, crashes (state lost), and crashes in the middle of
    a flush. A heartbeat right after a restart comes before the replay rebuilt anything."""
    topic: Topic = {}
    processor = _restored(topic, new_aggregator)
    position = 0
    while position < len(records):
        step = rng.randint(1, 80)
        _feed(processor, records[position : position + step], None)
        position += step
        action = rng.random()
        if action < 0.4:
            _flush(processor, topic, now=T0)
        elif action < 0.5:
            _flush(processor, topic, now=T0, cut_after=rng.randint(0, 5))
            processor, position = _restart(topic, new_aggregator)
        elif action < 0.6:
            processor, position = _restart(topic, new_aggregator)  # crash: unflushed work is lost
        if action >= 0.4 and rng.random() < 0.5:
            _heartbeat(processor, topic, now=T0 + 1)
    _flush(processor, topic, now=T0)
    return topic


def _restart(topic: Topic, new_aggregator: Callable[[], Aggregator]) -> tuple[PartitionProcessor, int]:
    processor = _restored(topic, new_aggregator)
    return processor, processor.seek_offset() or 0


@pytest.mark.parametrize("seed", range(12))
def test_cost_state_after_crashes_and_restores_equals_an_uninterrupted_run(seed: int) -> None:
    records = _cost_records(seed)
    expected = _state(_uninterrupted(records, CostsAggregator))
    assert _state(_interrupted(records, CostsAggregator, random.Random(seed))) == expected


@pytest.mark.parametrize("seed", range(8))
def test_quality_state_after_crashes_and_restores_equals_an_uninterrupted_run(seed: int) -> None:
    """The join index is not snapshotted: the restore must rebuild it by replaying."""
    records = _quality_records(seed)
    expected = _state(_uninterrupted(records, QualityAggregator))
    assert expected  # feedback was attributed at all
    assert _state(_interrupted(records, QualityAggregator, random.Random(seed))) == expected


def test_redelivered_offsets_are_skipped_and_counted() -> None:
    records = _cost_records(1, 50)
    processor = PartitionProcessor("events", 0, CostsAggregator(), DedupeConfig())
    first = _feed(processor, records, 0)
    again = _feed(processor, records[10:], 0)
    assert again.redelivered == 40 and again.counted == 0 and again.duplicates == 0
    assert first.counted + first.duplicates == sum(1 for r in records if r.event)


def test_a_publisher_resend_is_skipped_once_seen() -> None:
    event = consumer_event(ce.Completion("p", "m", cost_nanos_usd=5), event_id="same")
    records = [InputRecord(0, 0, "same", event), InputRecord(7, 5, "same", event)]
    processor = PartitionProcessor("events", 0, CostsAggregator(), DedupeConfig())
    stats = _feed(processor, records, 0)
    assert (stats.counted, stats.duplicates, processor.next_offset) == (1, 1, 8)


def test_the_checkpoint_replays_from_the_oldest_remembered_id() -> None:
    records = _cost_records(2, 30)
    processor = PartitionProcessor("events", 0, CostsAggregator(), DedupeConfig(max_ids=5))
    _feed(processor, records, 0)
    checkpoint = processor.checkpoint(T0)
    assert checkpoint["source"] == {"topic": "events", "partition": 0, "offset": 30}
    assert 0 < checkpoint["replay_from"] < 30


def test_a_heartbeat_repeats_the_published_checkpoint_even_before_the_replay() -> None:
    records = _cost_records(3, 60)
    first = PartitionProcessor("events", 0, CostsAggregator(), DedupeConfig())
    assert first.heartbeat(T0) == first.checkpoint(T0)  # nothing counted: the empty state
    topic: Topic = {}
    _feed(first, records[:40], 0)
    assert first.heartbeat(T0) is None  # counted but unpublished: only a flush may checkpoint
    _flush(first, topic, now=T0)
    published = topic["_checkpoint"]
    assert published["replay_from"] < published["source"]["offset"] == 40

    restored = _restored(topic, CostsAggregator)
    # Before the replay rebuilt the dedupe index, a fresh checkpoint would move replay_from up.
    assert restored.checkpoint(T0 + 5)["replay_from"] == 40
    beat = restored.heartbeat(T0 + 5)
    assert beat is not None and beat["generated_at"] != published["generated_at"]
    # Only when it was written and how fresh the state is then (replaying, here) differ.
    assert beat["freshness"]["phase"] == "replaying"
    assert {**beat, "generated_at": None, "freshness": None} == {
        **published,
        "generated_at": None,
        "freshness": None,
    }

    _feed(restored, records[:45], restored.seek_offset())  # replayed, then 5 new records
    assert restored.heartbeat(T0 + 6) is None
