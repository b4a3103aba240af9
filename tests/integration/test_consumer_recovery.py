"""A consumer process SIGKILLed under load and restarted (issue 19, item 2), on the real broker.

The machinery is bench/consumer_recovery.py's (the bench measures the same run at 1,000 events/s):
a `router-service consume costs` child process with static group membership and the dedupe log,
events arriving throughout, the process killed and restarted. The restart must load its dedupe
index rather than re-read the history (nothing redelivered below the checkpoint), get every
partition's lag under one snapshot interval of arrivals, and count every completion exactly once.
"""

from __future__ import annotations

from pathlib import Path

from bench.consumer_recovery import Plan, recovery
from router_service.embedded.broker import EmbeddedBroker


async def test_a_killed_consumer_resumes_at_its_checkpoint_and_counts_nothing_twice(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    # Static membership: Tansu holds the restarted member's join until the dead one's session
    # expires, so the session timeout (10 s by default) was most of this test's time.
    plan = Plan(
        rate=200.0, history=6_000, warmup_s=3.0, down_s=0.5, interval_s=2.0, timeout_s=90.0,
        group_instance_id="test-0", session_timeout_ms=3_000,
    )  # fmt: skip
    result = await recovery(kafka_broker.bootstrap, plan, tmp_path)
    print(f"\n[recovery] {result}")
    assert result.catch_up_s is not None  # every partition's lag got under rate x interval
    assert result.redelivered == 0  # the dedupe index came from the log: no re-read history
    # Per partition: the final checkpoint is at the end offset the broker acknowledged to the
    # producer, and the rollup counts every completion below it (the bench waited for the
    # checkpoints before the SIGTERM, and raises when they do not get there).
    for partition, (end, checkpoint, published, counted) in result.partitions.items():
        assert (checkpoint, counted) == (end, published), (partition, result.partitions)
    assert len(result.partitions) == 4
    assert result.counted_requests == result.completions > 6_000 / 4
    assert result.cost_exact
