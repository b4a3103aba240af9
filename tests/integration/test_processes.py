"""The real entry points as processes: bad config fails clearly; --workers N share one port and
shut down gracefully on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import yaml

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from tests.integration.conftest import Sims, chat, router_config_dict

CLI = [sys.executable, "-m", "router_launcher.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_invalid_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(
        "providers: {p: {kind: openai, base_url: 'http://127.0.0.1:1', api_key: sk-supersecret}}\n"
        "models: [{name: m, provider: q, price_per_mtok: {input: '1', output: '1'}}]\n"
    )
    result = subprocess.run(
        [*CLI, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "models[0].provider: unknown provider 'q'" in result.stderr
    assert "sk-supersecret" not in result.stderr + result.stdout


async def test_workers_share_the_port_and_drain_on_sigterm(sims: Sims, tmp_path: Path) -> None:
    port = free_port()
    config = router_config_dict(sims)
    config["server"] = {"listen": f"127.0.0.1:{port}", "grace_period_s": 5}
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(  # noqa: ASYNC220 - a child process is the thing under test
        [*CLI, "serve", "--config", str(path), "--workers", "2"], env=os.environ.copy()
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
            stub = pb_grpc.RouterServiceStub(channel)
            responses = await asyncio.gather(
                *(stub.Complete(pb.CompleteRequest(chat=chat()), timeout=10) for _ in range(20))
            )
        assert all(r.routing.provider == "sim-a" for r in responses)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_sighup_reloads_the_config_file(sims: Sims, tmp_path: Path) -> None:
    port = free_port()
    config = router_config_dict(sims)
    config["server"] = {"listen": f"127.0.0.1:{port}"}
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([*CLI, "serve", "--config", str(path)])  # noqa: ASYNC220 - the process under test
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
            stub = pb_grpc.RouterServiceStub(channel)
            before = (await stub.Route(pb.RouteRequest(chat=chat()), timeout=5)).decision.chosen

            config["policies"] = {"default": {"models": ["m2", "m1"]}}
            path.write_text(yaml.safe_dump(config))
            proc.send_signal(signal.SIGHUP)
            after = before
            for _ in range(100):
                after = (await stub.Route(pb.RouteRequest(chat=chat()), timeout=5)).decision.chosen
                if after != before:
                    break
                await asyncio.sleep(0.05)
        assert (before, after) == ("sim-a/m1", "sim-b/m2")
        assert proc.poll() is None  # still serving
    finally:
        proc.terminate()
        proc.wait(timeout=30)
