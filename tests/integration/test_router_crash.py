"""A router SIGKILLed under load loses no event of a call it answered (events.durable, issue 19).

Real processes: `router-service serve` (the CLI) publishing to the real embedded broker, which
outlives the router; real simulated providers over HTTP; a gRPC load of concurrent callers. At a
random moment the router is SIGKILLed (its last events still in the publisher's linger), then
started again on the same spool: every call that got an answer has its completion event in the
topic, once after dedupe by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import yaml
from aiokafka import AIOKafkaConsumer

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.embedded.broker import EmbeddedBroker
from router_service.telemetry import event_codec
from tests.integration.conftest import Sims, chat, router_config_dict

CLI = [sys.executable, "-m", "router_launcher.cli"]
CALLERS = 8
WARM_UP = 50
WARM_UP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_router(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [*CLI, "serve", "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LOG_LEVEL": "WARNING"},
        )


async def load_until_killed(port: int, proc: subprocess.Popen[bytes], kill_after_s: float) -> set[str]:
    """Callers with their own request ids until the router dies, `kill_after_s` after the first
    WARM_UP answers (a loaded machine may start slowly); the ids that got an answer."""
    answered: set[str] = set()
    warm = asyncio.Event()
    killed = asyncio.Event()

    async def caller(stub: pb_grpc.RouterServiceStub) -> None:
        while not killed.is_set():
            request_id = f"crash-{uuid.uuid4().hex[:12]}"
            try:
                await stub.Complete(pb.CompleteRequest(chat=chat(), request_id=request_id), timeout=5)
            except grpc.aio.AioRpcError:
                continue  # the router is gone (or going): no answer, no promise
            answered.add(request_id)
            if len(answered) >= WARM_UP:
                warm.set()

    async def killer() -> None:
        with contextlib.suppress(TimeoutError):  # a router that never answers is killed too
            await asyncio.wait_for(warm.wait(), WARM_UP_TIMEOUT_S)
        await asyncio.sleep(kill_after_s)
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait)
        killed.set()

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=30)
        stub = pb_grpc.RouterServiceStub(channel)
        await asyncio.gather(killer(), *(caller(stub) for _ in range(CALLERS)))
    return answered


async def completions(
    bootstrap: str, topic: str, wanted: set[str], timeout_s: float, kind: str = "completion"
) -> dict[str, set[str]]:
    """Request id -> the distinct event ids of its `kind` events, once every wanted request
    has one (or the timeout passed), read from the start of the topic."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: dict[str, set[str]] = {}
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not wanted <= found.keys():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    headers = list(record.headers)
                    if event_codec.kind_of(headers) == kind:
                        event_id = dict(headers)["ce_id"].decode()
                        found.setdefault(record.key.decode(), set()).add(event_id)
    finally:
        await consumer.stop()
    return found


async def crash_and_restart(
    sims: Sims, broker: EmbeddedBroker, tmp_path: Path, *, durable: bool, kill_after_s: float
) -> tuple[set[str], dict[str, set[str]], dict[str, set[str]]]:
    """One drill: the ids of answered calls, and the completion and decision events found after
    the restart."""
    topic = f"test.router.crash.{uuid.uuid4().hex[:10]}"
    port = free_port()
    config: dict[str, Any] = router_config_dict(sims)
    config["server"] = {"listen": f"127.0.0.1:{port}", "grace_period_s": 5}
    config["events"] = {
        "bootstrap_servers": broker.bootstrap,
        "topic": topic,
        "enable_idempotence": False,  # Tansu has no idempotent producer
        "create_topic_partitions": 3,
        "spool_dir": str(tmp_path / "spool"),
        "durable": durable,
        "linger_ms": 150,  # the default: the window a crash used to lose
    }
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "router.log"

    proc = start_router(path, log_path)
    try:
        answered = await load_until_killed(port, proc, kill_after_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    restarted = start_router(path, log_path)  # replays what the killed one left in the spool
    try:
        found = await completions(broker.bootstrap, topic, answered, timeout_s=30)
        decided = await completions(broker.bootstrap, topic, answered, timeout_s=10, kind="decision")
    finally:
        restarted.send_signal(signal.SIGTERM)
        try:
            restarted.wait(timeout=30)
        except subprocess.TimeoutExpired:
            restarted.kill()
            restarted.wait()
    return answered, found, decided


async def test_sigkill_under_load_loses_no_answered_calls_events(
    sims: Sims, kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    kill_after_s = random.uniform(0.0, 2.0)  # a random moment of the load
    answered, found, decided = await crash_and_restart(
        sims, kafka_broker, tmp_path, durable=True, kill_after_s=kill_after_s
    )

    assert len(answered) >= WARM_UP
    missing = answered - found.keys()
    assert not missing, f"{len(missing)} of {len(answered)} answered calls have no completion event"
    # Exactly once after dedupe: one completion event id per request, however often it was sent.
    assert all(len(event_ids) == 1 for request_id, event_ids in found.items() if request_id in answered)
    # A call's decision is held out of the log until its completion, and written with it.
    undecided = answered - decided.keys()
    assert not undecided, f"{len(undecided)} of {len(answered)} answered calls have no decision event"
