"""The shared consumer loop on the real broker: crash, restart and rebalances never double count;
an idle consumer keeps writing checkpoints (heartbeats) without changing anything.

Events are written by the router's own codec (JSON, CloudEvents headers, request-id keys), with
publisher resends (same event_id, new offset) and undecodable records mixed in. The rollups read
back from the snapshot topic must equal totals computed independently from the events, to the
nano-dollar and the token, in every window.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import Any

from router_contract.readers.costs import fleet_totals
from router_contract.snapshot_keys import CHECKPOINT_KEY, parse_record_key, record_key
from router_contract.windows import GRANULARITIES, parse_rfc3339, window_start
from router_service.telemetry import events as ev
from tests.consumers import helpers
from tests.consumers.conftest import ManualClock, Running, Setup, StartRunner
from tests.telemetry.helpers import eventually

GARBAGE = (
    b"req-garbage",
    b"{not json",
    [("ce_type", b"com.llmrouter.completion.v1"), ("content-type", b"application/json")],
)


def positions(runners: Sequence[Running]) -> dict[int, int]:
    out = {}
    for running in runners:
        for partition in running.runner.partitions:
            processor = running.runner.processor(partition)
            if processor is not None:
                out[partition] = processor.next_offset
    return out


class Ends(dict[int, int]):
    """Each input partition's end offset, from the producer's acks."""

    def update_from(self, written: dict[int, int]) -> None:
        for partition, end in written.items():
            self[partition] = max(self.get(partition, 0), end)

    def full(self, partitions: int) -> dict[int, int]:
        return {partition: self.get(partition, 0) for partition in range(partitions)}


async def publish_and_catch_up(
    setup: Setup, runners: Sequence[Running], events: list[ev.TelemetryEvent], ends: Ends
) -> None:
    ends.update_from(await helpers.publish(setup.bootstrap, setup.input_topic, events))
    want = ends.full(setup.partitions)
    await eventually(lambda: positions(runners) == want, 30, f"consumers to reach {want}")


def completions(events: list[ev.TelemetryEvent]) -> list[ev.TelemetryEvent]:
    return [event for event in events if isinstance(event.body, ev.CompletionEvent)]


async def test_cost_rollups_are_exact_after_a_kill_a_restart_and_two_rebalances(
    costs_setup: Setup, start_runner: StartRunner
) -> None:
    setup = costs_setup
    now = time.time()
    everything: list[ev.TelemetryEvent] = []

    # 1. The first consumer counts phase A (resends and garbage included) and flushes once.
    phase_a = helpers.mixed_events(200, seed=1, now_s=now)
    resends = completions(phase_a)[:25]
    ends = Ends()
    ends.update_from(
        await helpers.publish(setup.bootstrap, setup.input_topic, phase_a + resends, extra=[GARBAGE] * 3)
    )
    everything += phase_a + resends
    clock = ManualClock()
    first = start_runner("costs", setup.config(), clock)
    ends_a = ends.full(setup.partitions)
    await eventually(lambda: positions([first]) == ends_a, 30, "the first consumer to read phase A")
    clock.flush_now()
    await eventually(
        lambda: first.metric("llmrouter_consumer_flushes_total", trigger="interval", outcome="ok") >= 1,
        10,
        "a flush",
    )
    assert first.metric("llmrouter_consumer_duplicates_skipped_total", reason="event_id") == 25
    assert first.metric("llmrouter_consumer_decode_errors_total") == 3
    assert await helpers.committed(setup.bootstrap, setup.group_id, setup.input_topic, 4) == ends_a

    # 2. It counts phase B too, then dies before flushing or committing any of it.
    phase_b = helpers.mixed_events(150, seed=2, now_s=now)
    everything += phase_b
    await publish_and_catch_up(setup, [first], phase_b, ends)
    await first.kill()
    assert await helpers.committed(setup.bootstrap, setup.group_id, setup.input_topic, 4) == ends_a

    # 3. A restarted consumer resumes from the snapshots: phase A is replayed, not recounted.
    second = start_runner("costs", setup.config())
    phase_c = helpers.mixed_events(150, seed=3, now_s=now)
    everything += phase_c
    await publish_and_catch_up(setup, [second], phase_c, ends)
    assert second.metric("llmrouter_consumer_duplicates_skipped_total", reason="redelivered") > 0
    assert second.metric("llmrouter_consumer_partition_restores_total", source="snapshot") == 4

    # 4. A second instance joins the group: the partitions are split between them.
    third = start_runner("costs", setup.config())
    await eventually(
        lambda: len(second.runner.partitions) == 2 and len(third.runner.partitions) == 2, 30, "a rebalance"
    )
    phase_d = helpers.mixed_events(200, seed=4, now_s=now)
    phase_d += completions(phase_d)[:10]  # more resends, now spread over both instances
    everything += phase_d
    await publish_and_catch_up(setup, [second, third], phase_d, ends)

    # 5. It leaves again: the first instance takes its partitions back from its snapshots.
    await third.stop()
    await eventually(lambda: len(second.runner.partitions) == 4, 30, "the partitions to come back")
    assert second.metric("llmrouter_consumer_partition_restores_total", source="kept") >= 2
    phase_e = helpers.mixed_events(100, seed=5, now_s=now)
    everything += phase_e
    await publish_and_catch_up(setup, [second], phase_e, ends)
    await second.stop()

    assert await helpers.committed(setup.bootstrap, setup.group_id, setup.input_topic, 4) == ends.full(4)
    latest = await helpers.read_latest(setup.bootstrap, setup.snapshot_topic)
    truth = helpers.GroundTruth.of(everything)
    assert truth.totals["total=all"]["requests"] == 800
    for granularity, size in GRANULARITIES.items():
        rollups = fleet_totals(latest, granularity, window_start(now, size))
        assert {key: helpers.totals_json(totals) for key, totals in rollups.items()} == truth.totals, (
            granularity
        )


def _checkpoints(records: Sequence[helpers.SnapshotRecord], partition: int) -> list[helpers.SnapshotRecord]:
    return [r for r in records if r.key == record_key(CHECKPOINT_KEY, partition)]


def _without_time(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in ("generated_at", "freshness")}


async def test_an_idle_consumer_rewrites_its_checkpoints_every_interval_and_changes_nothing(
    costs_setup: Setup, start_runner: StartRunner
) -> None:
    setup = costs_setup
    interval = setup.config().snapshot_interval_s
    now = time.time()
    phase_a = helpers.mixed_events(40, seed=31, now_s=now)
    ends = Ends()
    ends.update_from(await helpers.publish(setup.bootstrap, setup.input_topic, phase_a))
    want = ends.full(setup.partitions)
    first = start_runner("costs", setup.config())  # real clock: an interval flush every 0.3 s
    await eventually(lambda: positions([first]) == want, 30, "the consumer to read everything")
    deadline = time.monotonic() + 10
    while await helpers.committed(setup.bootstrap, setup.group_id, setup.input_topic, 4) != want:
        assert time.monotonic() < deadline, "the flush of everything read"
        await asyncio.sleep(0.1)
    counted = first.metric("llmrouter_consumer_events_counted_total")

    before = await helpers.read_records(setup.bootstrap, setup.snapshot_topic)
    await asyncio.sleep(interval * 6)  # idle: no new events
    after = await helpers.read_records(setup.bootstrap, setup.snapshot_topic)
    read_at_ms = time.time() * 1000

    # Nothing but checkpoints was written while idle, and nothing moved.
    new = [r for r in after if r not in before]
    assert new and all(parse_record_key(r.key)[0] == CHECKPOINT_KEY for r in new)
    assert positions([first]) == want
    assert first.metric("llmrouter_consumer_events_counted_total") == counted
    assert await helpers.committed(setup.bootstrap, setup.group_id, setup.input_topic, 4) == want
    for partition in range(setup.partitions):
        # The last checkpoint of the full flush, then the heartbeats repeating it.
        repeated = _checkpoints(after, partition)[len(_checkpoints(before, partition)) - 1 :]
        assert len(repeated) >= 4, partition
        assert repeated[0].value["source"]["offset"] == want[partition]
        assert all(_without_time(r.value) == _without_time(repeated[0].value) for r in repeated)
        times = [parse_rfc3339(r.value["generated_at"]) for r in repeated]
        assert all(b - a >= interval - 0.002 for a, b in itertools.pairwise(times)), times
        assert read_at_ms - repeated[-1].timestamp_ms < interval * 1000 * 4  # fresh
    assert first.metric("llmrouter_consumer_flushes_total", trigger="heartbeat", outcome="ok") >= 3
    await first.stop()

    # A restart restores from the heartbeats exactly as from the flush they repeat: the replay
    # rebuilds the dedupe index, so resends of phase A are still caught, and nothing is recounted.
    # (A new group: positions come from the snapshot topic, not the group's offsets, and on Tansu a
    # fresh group is joined seconds sooner than the old one is rejoined.)
    second = start_runner("costs", setup.config(group_id=helpers.unique("g")))
    resends = completions(phase_a)[:6]
    phase_b = helpers.mixed_events(20, seed=32, now_s=now)
    await publish_and_catch_up(setup, [second], resends + phase_b, ends)
    await second.stop()
    assert second.metric("llmrouter_consumer_partition_restores_total", source="snapshot") == 4
    assert second.metric("llmrouter_consumer_duplicates_skipped_total", reason="event_id") == 6
    assert second.metric("llmrouter_consumer_duplicates_skipped_total", reason="redelivered") > 0
    latest = await helpers.read_latest(setup.bootstrap, setup.snapshot_topic)
    truth = helpers.GroundTruth.of(phase_a + resends + phase_b)
    rollups = fleet_totals(latest, "hour", window_start(now, 3600))
    assert {key: helpers.totals_json(totals) for key, totals in rollups.items()} == truth.totals
