"""`router-service up` as a real process: the embedded broker, simulators, router and consumers.

A completion through the router with the dev key `up` printed shows up in the consumers' cost
snapshot topic, attributed to that key, its team and its customer; the consumers serve their
metrics on their own port, and SIGTERM stops the router before the consumers and
exits 0.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_contract.readers.costs import fleet_totals
from router_contract.windows import window_start
from router_service.embedded.broker import free_port
from tests.consumers import helpers
from tests.integration.conftest import chat

CLI = [sys.executable, "-m", "router_launcher.cli"]
ROOT = Path(__file__).resolve().parents[2]


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


async def _wait_for_line(
    log: Path, pattern: str, process: asyncio.subprocess.Process, timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = re.search(pattern, _text(log), re.MULTILINE)
        if match:
            return match.group(1)
        assert process.returncode is None, _text(log)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no line matching {pattern!r}:\n{_text(log)}")


async def _requests_in_costs_topic(bootstrap: str, now: float) -> dict[str, int]:
    """{dimension key: requests} of this hour's cost rollups."""
    latest = await helpers.read_latest(bootstrap, "llmrouter.costs.v1", timeout_s=3)
    totals = fleet_totals(latest, "hour", window_start(now, 3600))
    return {key: int(total.requests) for key, total in totals.items()}


async def test_up_runs_the_consumers_and_stops_them_after_the_router(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "ROUTER_METRICS_LISTEN": "",
        "CONSUMER_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "EVENTS_SPOOL_DIR": str(tmp_path / "spool"),
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *CLI, "up", "--port", str(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        bootstrap = await _wait_for_line(log_path, r"^  kafka +(\S+)", process, 30)
        await _wait_for_line(log_path, r"^  (snapshot topics +llmrouter\.costs\.v1, .*)$", process, 5)
        key = await _wait_for_line(log_path, r"^  export ROUTER_API_KEY=(lrk_k_dev\.\S+)$", process, 5)
        now = time.time()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=10)
            response = await pb_grpc.RouterServiceStub(channel).Complete(
                pb.CompleteRequest(chat=chat()), metadata=(("authorization", f"Bearer {key}"),), timeout=10
            )
        assert response.routing.request_id

        deadline = time.monotonic() + 20
        while (requests := await _requests_in_costs_topic(bootstrap, now)).get("total=all", 0) < 1:
            assert time.monotonic() < deadline, _text(log_path)
            await asyncio.sleep(0.5)
        attributed = {
            k: n
            for k, n in requests.items()
            if n and k.split("=")[0] in ("total", "api_key", "team", "customer")
        }
        # The caller's per-model breakdowns (routerctl costs --team); a hedge loser's model, if
        # any, has a cost there but no request.
        model = response.routing.model
        assert attributed == {
            "total=all": 1,
            "api_key=k_dev": 1,
            "team=dev": 1,
            "customer=dev": 1,
            **{f"{caller},model={model}": 1 for caller in ("api_key=k_dev", "team=dev", "customer=dev")},
        }, requests
        # The request's attempts and its completion (costs reads attempts for unused hedge
        # answers). Usually one attempt, but `up`'s sims fail a few percent of calls, and a retry or
        # fallback is one more attempt; a hedge loser's attempt event may come a little later.
        events = len(response.routing.attempts) + 1
        counted = f'llmrouter_consumer_events_counted_total{{consumer="costs"}} {events:.1f}'
        deadline = time.monotonic() + 10
        async with httpx.AsyncClient() as client:
            while counted not in (
                metrics := (await client.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)).text
            ):
                assert time.monotonic() < deadline, f"{counted!r} not in the consumers' metrics:\n{metrics}"
                await asyncio.sleep(0.2)

        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = _text(log_path)
    assert code == 0, output
    assert output.index("router stopped") < output.index("consumers stopped"), output
