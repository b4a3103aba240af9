"""ChildServer: the lifecycle every embedded server shares (the broker, Redis).

A child server is one or more processes started together on loopback, ready when a protocol probe
on the public port answers, and stopped in reverse order (SIGTERM, then SIGKILL after a grace).
Subclasses say what to run (`_commands`) and how to tell it is ready (`_answers`); start, stop,
kill, restart and the retry on a port still held after a stop live here once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"


def free_port() -> int:
    """A port that was free a moment ago (the OS may hand it out again; good enough on loopback)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_if_free(preferred: int) -> int:
    """`preferred` when it can be bound on loopback now, else a free port.

    `router-service up` asks for Kafka's usual 9092, so the README's `kcat -b 127.0.0.1:9092`
    commands work as written; a second stack, or a real Kafka already there, gets another port
    (printed by `up`).
    """
    with socket.socket() as sock:
        try:
            sock.bind((HOST, preferred))
        except OSError:
            return free_port()
    return preferred


class ChildServer:
    """Start, stop, kill and restart (on the same port) a set of child processes serving one port."""

    name = "server"  # for error messages
    start_error: type[RuntimeError] = RuntimeError
    default_grace_s = 1.0

    def __init__(
        self,
        port: int | None,
        *,
        log_name: str,
        log_path: str | os.PathLike[str] | None,
        startup_timeout_s: float,
    ) -> None:
        self._port = port or free_port()
        self._log_path = (
            Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"{log_name}-{self._port}.log"
        )
        self._startup_timeout_s = startup_timeout_s
        self._processes: list[subprocess.Popen[bytes]] = []  # in start order; stopped in reverse
        self._running = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def pids(self) -> tuple[int, ...]:
        """The child processes' ids, in start order (empty when stopped)."""
        return tuple(process.pid for process in self._processes)

    @property
    def running(self) -> bool:
        return (
            self._running
            and bool(self._processes)
            and all(process.poll() is None for process in self._processes)
        )

    async def start(self) -> None:
        """Launch and wait until the port answers the probe. Idempotent while running."""
        if self.running:
            return
        deadline = time.monotonic() + self._startup_timeout_s
        # The port may still be held for a moment after a stop; retry the launch until the deadline.
        while True:
            self._processes = self._launch()
            if await self._wait_ready(deadline):
                self._running = True
                return
            await self._terminate(grace_s=1.0)
            if time.monotonic() >= deadline:
                raise self.start_error(
                    f"{self.name} did not start on {HOST}:{self._port}; see {self._log_path}"
                )
            await asyncio.sleep(0.1)

    async def stop(self, grace_s: float | None = None) -> None:
        """SIGTERM, then SIGKILL after the grace. Idempotent; start() may be called again after."""
        await self._terminate(self.default_grace_s if grace_s is None else grace_s)
        self._running = False

    async def kill(self) -> None:
        """SIGKILL at once, like a crashed host. start() may be called again after."""
        await self._terminate(grace_s=0.0)
        self._running = False

    async def restart(self) -> None:
        """Stop and start again on the same port."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _commands(self) -> list[list[str]]:
        """The argv of each process, in start order (called for every launch)."""
        raise NotImplementedError

    async def _answers(self, port: int) -> bool:
        """True when the public port speaks the server's protocol."""
        raise NotImplementedError

    def _launch(self) -> list[subprocess.Popen[bytes]]:
        started: list[subprocess.Popen[bytes]] = []
        with open(self._log_path, "ab") as log:
            for command in self._commands():
                try:
                    # start_new_session: a Ctrl-C reaches us, and we stop the children in order.
                    process = subprocess.Popen(
                        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                except OSError as exc:
                    for process in started:
                        process.kill()
                        process.wait()
                    raise self.start_error(f"cannot run {command[0]!r}: {exc}") from exc
                started.append(process)
        return started

    async def _wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if any(process.poll() is not None for process in self._processes):
                return False  # one exited: most likely a port was still taken
            if await self._answers(self._port):
                return True
            await asyncio.sleep(0.02)
        return False

    async def _terminate(self, grace_s: float) -> None:
        processes, self._processes = self._processes, []
        for process in reversed(processes):
            await _end(process, grace_s)


async def _end(process: subprocess.Popen[bytes], grace_s: float) -> None:
    if process.poll() is not None:
        return
    if grace_s > 0:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, grace_s)
    if process.poll() is None:
        process.kill()
        await asyncio.to_thread(process.wait)


async def exchange(port: int, request: bytes, read: int | None = None) -> bytes | None:
    """Send `request` to 127.0.0.1:`port` and read the answer's first line (or `read` bytes).

    None when the port does not accept, or does not answer within a second: the probes' primitive.
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 1.0)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(request)
        await writer.drain()
        answer = reader.readline() if read is None else reader.readexactly(read)
        return await asyncio.wait_for(answer, 1.0)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
