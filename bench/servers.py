"""Server processes for the benchmarks: each on a free 127.0.0.1 port with its output in a log
file, stopped (SIGTERM, then SIGKILL) however the benchmark ends; readiness probes; process CPU."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router_service.settings import parse_config

ECHO_SERVER = Path(__file__).resolve().parent / "echo_server.py"
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def router_service_argv() -> list[str]:
    script = Path(sys.executable).with_name("router-service")
    return [str(script)] if script.exists() else [sys.executable, "-m", "router_launcher.cli"]


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


class Fleet:
    """The server subprocesses; `stop_all` (SIGTERM, then SIGKILL) runs however the bench ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: list[Server] = []

    def spawn(self, name: str, port: int, argv: list[str]) -> Server:
        log_path = self.workdir / f"{name.replace('/', '_')}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        server = Server(name, port, proc, log_path)
        self.servers.append(server)
        return server

    def spawn_sim(self) -> Server:
        port = free_port()
        argv = [*router_service_argv(), "sim", "--port", str(port), "--preset", "instant"]
        return self.spawn("sim", port, argv)

    def spawn_echo(self) -> Server:
        port = free_port()
        return self.spawn("echo", port, [sys.executable, str(ECHO_SERVER), "--port", str(port)])

    def spawn_router(self, name: str, config_for_port: Callable[[int], dict[str, Any]]) -> Server:
        """`router-service serve` with the config built for its (free) port."""
        port = free_port()
        config = config_for_port(port)
        parse_config(config)  # fail here, with the field named, rather than in a child's log
        path = self.workdir / f"{name.replace('/', '_')}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.spawn(name, port, [*router_service_argv(), "serve", "--config", str(path)])

    def stop_all(self) -> None:
        for server in self.servers:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
        for server in self.servers:
            try:
                server.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


async def wait_ready(server: Server, probe: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        with contextlib.suppress(Exception):
            if await probe():
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name} not ready after {READY_TIMEOUT_S:.0f}s:\n{server.log_tail()}")


def http_probe(url: str) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(url)).status_code == 200

    return probe


def grpc_health_probe(port: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            reply = await check(health_pb2.HealthCheckRequest(), timeout=1.0)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    return probe


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s(pid: int) -> float:
    """CPU seconds used by a process's running children, and theirs."""
    total = 0.0
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            total += process_cpu_s(int(child)) + children_cpu_s(int(child))
    return total
