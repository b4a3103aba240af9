"""The freshness a consumer publishes on the real broker: catching up while it reads a backlog,
live once it has read it (router.v1.Snapshot.freshness; issue 19, item 2)."""

from __future__ import annotations

import time

from router_contract.snapshot_keys import CHECKPOINT_KEY, parse_record_key
from tests.consumers import helpers
from tests.consumers.conftest import Setup, StartRunner
from tests.consumers.test_runner import Ends, positions
from tests.telemetry.helpers import eventually


async def test_checkpoints_say_catching_up_through_a_backlog_then_live(
    costs_setup: Setup, start_runner: StartRunner
) -> None:
    setup = costs_setup
    # A backlog an hour old (a consumer restarted after an outage), read one record per poll and
    # flushed every 10 ms: the first flushes come long before the end of it.
    backlog = helpers.mixed_events(300, seed=41, now_s=time.time() - 3600)
    ends = Ends()
    ends.update_from(await helpers.publish(setup.bootstrap, setup.input_topic, backlog))
    want = ends.full(setup.partitions)
    running = start_runner("costs", setup.config(max_poll_records=1, snapshot_interval_s=0.01))
    await eventually(lambda: positions([running]) == want, 60, "the consumer to read the backlog")
    await running.stop()  # the final flush: everything counted

    records = await helpers.read_records(setup.bootstrap, setup.snapshot_topic)
    checkpoints = [r for r in records if parse_record_key(r.key)[0] == CHECKPOINT_KEY and r.value]
    behind = [r.value["freshness"] for r in checkpoints if r.value["freshness"]["phase"] == "catching_up"]
    assert behind, "no checkpoint said it was catching up"
    assert all(f["lag_count"] > 0 for f in behind)
    for partition in range(setup.partitions):
        last = [r for r in checkpoints if parse_record_key(r.key)[1] == partition][-1].value
        assert last["source"]["offset"] == want[partition]
        # Read to the end: nothing unread, so live, however old its events are.
        assert last["freshness"]["lag_count"] == 0 and last["freshness"]["phase"] == "live"
