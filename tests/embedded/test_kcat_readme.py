"""The READMEs' kcat pipelines, run as documented with Debian's kcat and jq, on the embedded broker.

The commands are read out of README.md and consumers/README.md (so a changed command is what is
tested), with only the bootstrap address replaced. The broker is this test's own (the commands
name the real topics); the events come from the router's event codec through a real producer,
and the cost snapshots from the real costs job. kcat and jq are Debian 12's packages
(scripts/fetch_kcat.sh, run by `make pytest`): librdkafka 2.0.2, older than the 2.2 that first
parsed Tansu's ApiVersions tags, so this fails without the relay in embedded/kafka_front.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from consumers.jobs import JOBS
from consumers.metrics import ConsumerMetrics
from consumers.runner import ConsumerRunner, RunnerConfig
from router_service.embedded.broker import EmbeddedBroker
from router_service.telemetry import events as ev
from tests.consumers import helpers
from tests.consumers.conftest import FAST_GROUPS

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_BOOTSTRAP = "127.0.0.1:9092"
EVENTS_TOPIC = "llmrouter.events.v1"
COSTS_TOPIC = "llmrouter.costs.v1"
REQUESTS = 12


@pytest.fixture(scope="module")
def kcat() -> Path:
    """kcat from `make` (scripts/fetch_kcat.sh, jq beside it); missing only when pytest runs alone.
    Never skipped: a missing tool fails with the command that fetches it."""
    path = ROOT / os.environ.get("KCAT", "build/tools/kcat")
    if not path.exists():
        pytest.fail(f"kcat missing at {path}: run `make pytest` or `scripts/fetch_kcat.sh {path}`")
    return path


def documented_kcat_commands(readme: Path) -> list[str]:
    """Every shell command in the file's bash blocks that starts with kcat (continuations joined)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme.read_text(), flags=re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            if command.startswith("kcat "):
                commands.append(command)
    return commands


def run_documented(command: str, kcat: Path, bootstrap: str) -> list[str]:
    assert DOCUMENTED_BOOTSTRAP in command, command
    command = command.replace(DOCUMENTED_BOOTSTRAP, bootstrap)
    command = shlex.quote(str(kcat)) + command.removeprefix("kcat")
    # jq is fetched beside kcat; pipefail: a failing kcat fails the pipeline, not just its last stage.
    env = dict(os.environ, PATH=f"{kcat.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stderr}"
    return result.stdout.splitlines()


def test_each_readme_documents_a_kcat_command() -> None:
    assert len(documented_kcat_commands(ROOT / "README.md")) == 1
    assert len(documented_kcat_commands(ROOT / "consumers" / "README.md")) == 1


async def _cost_snapshots(bootstrap: str) -> None:
    """The real costs job reads the events topic until its snapshot counts every completion."""
    registry = CollectorRegistry()
    runner = ConsumerRunner(
        JOBS["costs"],
        RunnerConfig(
            input_topic=EVENTS_TOPIC,
            snapshot_topic=COSTS_TOPIC,
            group_id=helpers.unique("g"),
            snapshot_interval_s=0.3,
            snapshot_encoding="json",  # as `router-service up` and `--snapshot-encoding json` write
            poll_timeout_ms=100,
            **FAST_GROUPS,
        ),
        helpers.options(bootstrap),
        ConsumerMetrics(registry),
    )
    task = asyncio.create_task(runner.run())
    try:

        def counted_all() -> bool:
            if task.done():
                return True  # a crash: the result() below raises it
            value = latest.get("total=all#0")
            return bool(value) and value["windows"]["hour"][-1]["requests"] == REQUESTS

        latest: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 60
        while not counted_all() and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            latest = await helpers.read_latest(bootstrap, COSTS_TOPIC)
        assert counted_all(), f"no complete cost snapshot within 60 s: {latest.get('total=all#0')}"
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)


async def test_the_readmes_kcat_pipelines_show_the_published_events_and_costs(
    kcat: Path, tmp_path: Path
) -> None:
    async with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        # One partition each: kcat prints records in publish order, and one costs key per dimension.
        await helpers.create_topics(broker.bootstrap, EVENTS_TOPIC, 1, COSTS_TOPIC)
        events = helpers.mixed_events(REQUESTS, seed=5, now_s=time.time())
        await helpers.publish(broker.bootstrap, EVENTS_TOPIC, events)  # JSON: the default encoding
        await _cost_snapshots(broker.bootstrap)

        (events_command,) = documented_kcat_commands(ROOT / "README.md")
        shown = [json.loads(line) for line in run_documented(events_command, kcat, broker.bootstrap)]
        assert shown == [
            {"type": type(e.body).__name__.removesuffix("Event").lower(), "requestId": e.context.request_id}
            for e in events
        ]

        (costs_command,) = documented_kcat_commands(ROOT / "consumers" / "README.md")
        hours = [json.loads(line) for line in run_documented(costs_command, kcat, broker.bootstrap)]
        completions = [e.body for e in events if isinstance(e.body, ev.CompletionEvent)]
        assert hours, "the costs pipeline printed nothing"
        assert all(set(hour) == {"start", "requests", "costNanosUsd"} for hour in hours)
        assert hours[-1]["requests"] == REQUESTS == len(completions)
        assert hours[-1]["costNanosUsd"] == str(sum(c.cost_nanos for c in completions))  # int64: exact
        assert hours[-1]["start"].endswith(":00:00Z")  # a Timestamp in the JSON mapping


async def test_kcat_lists_produces_and_consumes_keys_and_headers(
    kafka_broker: EmbeddedBroker, kcat: Path
) -> None:
    """What else a reader of the READMEs will try: -L, -P with keys and headers, -C with formats."""
    topic = helpers.unique("kcat")
    await helpers.create_topics(kafka_broker.bootstrap, topic, 1, helpers.unique("unused"))
    base = [str(kcat), "-b", kafka_broker.bootstrap]

    def run(*args: str, stdin: str = "") -> str:
        result = subprocess.run([*base, *args], input=stdin, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"kcat {' '.join(args)}: exit {result.returncode}\n{result.stderr}"
        return result.stdout

    assert f'topic "{topic}" with 1 partitions' in run("-L", "-t", topic)
    run("-P", "-t", topic, "-K", ":", "-H", "ce_type=demo", stdin='k1:{"n":1}\nk2:{"n":2}\n')
    assert run("-C", "-t", topic, "-e", "-f", "%k %s %h\n").splitlines() == [
        'k1 {"n":1} ce_type=demo',
        'k2 {"n":2} ce_type=demo',
    ]
