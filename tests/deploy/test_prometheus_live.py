"""The rules and the dashboard on a real Prometheus scraping a real stack (`router-service up`).

Unit tests (test_prometheus_rules.py) feed the rules synthetic series; this runs them on what the
router and consumers really expose: every rule evaluates without error, every dashboard query
runs, a healthy stack raises no alert, and killing the broker raises the ones that say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.embedded.broker import free_port
from tests.deploy.conftest import DEPLOY, ROOT
from tests.deploy.test_grafana_dashboard import dashboard_queries
from tests.integration.conftest import chat

pytestmark = pytest.mark.timeout(240)

CLI = [sys.executable, "-m", "router_launcher.cli"]
# Alerts a healthy stack must not even have pending once its consumers have published (the others
# need minutes of data to judge, and `up`'s simulators fail a few percent of calls on purpose).
HEALTHY_STACK_QUIET = {
    "LLMRouterDown",
    "LLMRouterConsumerDown",
    "LLMRouterEventBrokerUnreachable",
    "LLMRouterFleetViewStale",
    "LLMRouterEventsDropped",
}
# The router's fleet view goes stale this long after the broker dies (default 20 s, which this
# test would only wait for): still three of `up`'s 2 s snapshot intervals, so a healthy stack stays
# fresh. And it serves at once rather than waiting for snapshots no consumer has written yet.
FLEET = {"stale_after_s": 6.0, "startup_wait_s": 0.0}


class Stack:
    def __init__(self, process: asyncio.subprocess.Process, grpc_port: int, prometheus: str) -> None:
        self.process = process
        self.grpc_port = grpc_port
        self.prometheus = prometheus
        self.http = httpx.AsyncClient(base_url=prometheus, timeout=5)
        self.broker_killed = False

    async def query(self, expr: str) -> list[dict[str, Any]]:
        body = (await self.http.get("/api/v1/query", params={"query": expr})).json()
        assert body["status"] == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    async def alerts(self) -> dict[str, set[str]]:
        """Alert name -> states (pending, firing) of its instances."""
        found: dict[str, set[str]] = {}
        for alert in (await self.http.get("/api/v1/alerts")).json()["data"]["alerts"]:
            found.setdefault(alert["labels"]["alertname"], set()).add(alert["state"])
        return found

    async def complete(self, n: int) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            for _ in range(n):
                await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=10)


@pytest.fixture
def prometheus_binary(promtool: Path) -> Path:
    path = promtool.parent / "prometheus"  # scripts/fetch_promtool.sh puts it there
    assert path.exists(), f"{path} missing: run scripts/fetch_promtool.sh {promtool}"
    return path


@pytest.fixture
async def stack(tmp_path: Path, prometheus_binary: Path) -> AsyncIterator[Stack]:
    grpc_port, router_metrics, consumer_metrics, web = (free_port() for _ in range(4))
    env = {
        **os.environ,
        "ROUTER_METRICS_LISTEN": f"127.0.0.1:{router_metrics}",
        "CONSUMER_METRICS_LISTEN": f"127.0.0.1:{consumer_metrics}",
        "EVENTS_SPOOL_DIR": str(tmp_path / "spool"),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    # The compose scrape config with these ports, faster intervals, and the same rule files.
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    targets = {"llm-router": router_metrics, "llm-router-consumers": consumer_metrics}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copytree(DEPLOY / "prometheus" / "rules", tmp_path / "rules")
    template = yaml.safe_load((ROOT / "config" / "embedded.yaml").read_text())
    template["fleet"] = {**template.get("fleet", {}), **FLEET}
    (tmp_path / "embedded.yaml").write_text(yaml.safe_dump(template))
    args = ["up", "--config", str(tmp_path / "embedded.yaml"), "--port", str(grpc_port)]

    with (tmp_path / "up.log").open("wb") as log:
        up = await asyncio.create_subprocess_exec(
            *CLI, *args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    with (tmp_path / "prometheus.log").open("wb") as log:
        prometheus = await asyncio.create_subprocess_exec(
            str(prometheus_binary),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web}",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack = Stack(up, grpc_port, f"http://127.0.0.1:{web}")
    try:
        yield stack
    finally:
        await stack.http.aclose()
        # Without its broker, `up`'s graceful stop only waits out the consumers' final flush
        # (30 s), and its one child process, the broker, is dead already.
        stop_up = signal.SIGKILL if stack.broker_killed else signal.SIGTERM
        for process, sig in ((up, stop_up), (prometheus, signal.SIGTERM)):
            if process.returncode is None:
                process.send_signal(sig)
        for process in (up, prometheus):
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _eventually(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := await check()):
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.5)
    return result


def _tansu_pids(root: int) -> list[int]:
    """The embedded broker's processes among `root`'s descendants (Linux /proc). A process may
    exit while this walks: what can no longer be read is skipped."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").glob("*"):
                with contextlib.suppress(OSError):
                    todo += [int(child) for child in (task / "children").read_text().split()]
            if pid != root and b"tansu" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


async def test_every_rule_and_query_runs_on_real_metrics_and_a_broker_outage_alerts(stack: Stack) -> None:
    async def ready() -> bool:
        try:
            return (await stack.http.get("/-/ready")).status_code == 200
        except httpx.TransportError:
            return False

    await _eventually("Prometheus ready", ready, 30)

    async def channel_ready() -> bool:
        assert stack.process.returncode is None, "router-service up exited"
        try:
            await stack.complete(1)
        except grpc.aio.AioRpcError:
            return False
        return True

    await _eventually("the router answers", channel_ready, 60)

    async def both_targets_up() -> bool:
        return sorted(float(r["value"][1]) for r in await stack.query("up")) == [1.0, 1.0]

    async def events_recorded() -> list[dict[str, Any]]:
        return await stack.query('llmrouter:events_published:rate5m{type="decision"} > 0')

    async def counters_scraped() -> bool:
        series = await stack.query('llmrouter_events_published_total{type="decision"}')
        return bool(series) and bool(await stack.query("llmrouter_cost_nano_usd_total"))

    # Traffic after a scrape has seen the counters (the first call made them), so that rate() sees
    # them move.
    await _eventually("both targets scraped", both_targets_up, 30)
    await _eventually("the counters scraped", counters_scraped, 30)
    await stack.complete(20)
    await _eventually("the recording rules see published events", events_recorded, 30)
    assert await stack.query("llmrouter:cost_usd_per_hour:rate1h > 0")

    groups = (await stack.http.get("/api/v1/rules")).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    on_disk = [
        rule
        for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]
    assert len(rules) == len(on_disk) > 0  # every rule file's rules loaded (the count moves with the rules)
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert broken == {}

    for _, expr in dashboard_queries():  # as Grafana sends them
        await stack.query(expr)  # fails on a query Prometheus rejects, naming it

    # The fleet view is stale until the consumers' first snapshots (its alert waits 5 minutes
    # before firing for that reason), so "healthy" is waited for, then must hold.
    async def healthy() -> bool:
        return not HEALTHY_STACK_QUIET & set(await stack.alerts())

    await _eventually("no outage alert on the healthy stack", healthy, 60)
    alerts = await stack.alerts()
    assert not any("firing" in states for states in alerts.values()), alerts

    # The drill: the broker dies; the router spools and says so, and its fleet view goes stale.
    pids = _tansu_pids(stack.process.pid)
    assert pids, "no embedded broker process under `router-service up`"
    stack.broker_killed = True
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    await stack.complete(10)

    async def outage_alerts() -> bool:
        alerts = await stack.alerts()
        return {"LLMRouterEventBrokerUnreachable", "LLMRouterFleetViewStale"} <= set(alerts)

    await _eventually("broker and stale-view alerts pending", outage_alerts, 90)
    assert await stack.query("llmrouter_events_spool_bytes > 0")
