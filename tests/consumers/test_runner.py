"""The shared consumer loop on the real broker: crash, restart and rebalances never double count.

Events are written by the router's own codec (JSON, CloudEvents headers, request-id keys), with
publisher resends (same event_id, new offset) and undecodable records mixed in. The rollups read
back from the snapshot topic must equal totals computed independently from the events, to the
nano-dollar and the token, in every window.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from consumers.costs.view import fleet_totals
from consumers.windows import GRANULARITIES, window_start
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
