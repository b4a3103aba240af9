"""`router-service consume costs` as a real process (`python -m consumers` is the same entry point):
it creates its snapshot topic when asked to, and SIGTERM flushes, commits and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from consumers.kafka import ensure_topic
from router_contract.readers.costs import fleet_totals
from router_contract.windows import window_start
from router_service.embedded.broker import EmbeddedBroker, free_port
from tests.consumers import helpers
from tests.telemetry.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]


def _records_read(port: int) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
    except httpx.HTTPError:
        return -1
    for line in text.splitlines():
        if line.startswith('llmrouter_consumer_records_total{consumer="costs"}'):
            return float(line.split()[-1])
    return 0


async def test_sigterm_flushes_commits_and_exits_zero(kafka_broker: EmbeddedBroker, tmp_path: Path) -> None:
    bootstrap = kafka_broker.bootstrap
    input_topic, snapshot_topic, group = (
        helpers.unique("events"),
        helpers.unique("costs"),
        helpers.unique("g"),
    )
    # Only the input topic: the consumer creates its snapshot topic (--create-topics).
    await ensure_topic(helpers.options(bootstrap), input_topic, 2, compacted=False)
    now = time.time()
    events = helpers.mixed_events(150, seed=21, now_s=now)
    written = await helpers.publish(bootstrap, input_topic, events)
    port = free_port()
    command = [
        sys.executable, "-m", "router_launcher.cli", "consume", "costs", "--bootstrap", bootstrap,
        "--input-topic", input_topic, "--snapshot-topic", snapshot_topic, "--group-id", group,
        "--snapshot-interval", "600",  # no interval flush: only the shutdown can publish anything
        "--metrics-port", str(port), "--create-topics",
        "--cost-tag-dimensions", "feature, plan",  # not "region", which some events carry too
    ]  # fmt: skip
    env = {**os.environ, "KAFKA_ENABLE_IDEMPOTENCE": "false"}
    log = (tmp_path / "consumer.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        total = sum(written.values())
        await eventually(lambda: _records_read(port) == total, 30, "the process to read every record")
        assert await helpers.read_latest(bootstrap, snapshot_topic) == {}  # nothing flushed yet
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
    assert code == 0, (tmp_path / "consumer.log").read_text()

    assert await helpers.committed(bootstrap, group, input_topic, 2) == written
    latest = await helpers.read_latest(bootstrap, snapshot_topic)
    rollups = fleet_totals(latest, "hour", window_start(now, 3600))
    truth = helpers.GroundTruth.of(events, tag_dimensions={"feature", "plan"}).totals
    assert any(key.startswith("tag:plan=") for key in truth)
    assert not any(key.startswith("tag:region=") for key in rollups)
    assert {key: helpers.totals_json(totals) for key, totals in rollups.items()} == truth
