"""EmbeddedRedis: a real redis-server as a child process on loopback, for tests and the dev stack.

The binary: $REDIS_SERVER_BIN, else build/tools/redis-server (Debian's package, fetched without
root by scripts/fetch_redis.sh; `make pytest` and `make up` run it), else redis-server on PATH.
No persistence by default (`--save ''`, `--appendonly no`): a stopped server forgets everything,
like the embedded broker. It listens on 127.0.0.1 only, on a free port, and is ready when it
answers PING (RESP spoken directly: no client library needed to start it).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from router_service.embedded.broker import free_port

BIN_ENV_VAR = "REDIS_SERVER_BIN"
_HOST = "127.0.0.1"
# scripts/fetch_redis.sh's destination, relative to the repository root (this file's grandparent).
_FETCHED = Path(__file__).resolve().parents[2] / "build" / "tools" / "redis-server"


class RedisStartError(RuntimeError):
    """No redis-server binary, or it exited or never answered PING."""


class _State(enum.Enum):
    STOPPED = "stopped"
    RUNNING = "running"


def resolve_binary() -> str:
    """$REDIS_SERVER_BIN, else build/tools/redis-server, else redis-server on PATH."""
    override = os.environ.get(BIN_ENV_VAR)
    if override:
        return override
    if _FETCHED.exists():
        return str(_FETCHED)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    raise RedisStartError(
        f"no redis-server: run `scripts/fetch_redis.sh {_FETCHED}` (make pytest does), "
        f"install it, or set {BIN_ENV_VAR}"
    )


class EmbeddedRedis:
    """Start and stop a memory-only redis-server on 127.0.0.1."""

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout_s: float = 15.0,
    ) -> None:
        self._port = port or free_port()
        self._binary = binary
        self._log_path = (
            Path(log_path) if log_path else Path(tempfile.gettempdir()) / f"redis-{self._port}.log"
        )
        self._extra_args = extra_args
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._state = _State.STOPPED

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`, for redis.asyncio.from_url."""
        return f"redis://{_HOST}:{self._port}/0"

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._state is _State.RUNNING and self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        """Launch redis-server and wait until it answers PING. Idempotent while running."""
        if self.running:
            return
        deadline = time.monotonic() + self._startup_timeout_s
        # The port may still be held for a moment after a stop; retry the launch until the deadline.
        while True:
            self._process = self._launch()
            if await self._wait_ready(deadline):
                self._state = _State.RUNNING
                return
            await self._terminate(grace_s=1.0)
            if time.monotonic() >= deadline:
                raise RedisStartError(
                    f"redis-server did not start on {_HOST}:{self._port}; see {self._log_path}"
                )
            await asyncio.sleep(0.1)

    async def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM (redis exits at once when there is nothing to save), then SIGKILL. Idempotent."""
        await self._terminate(grace_s)
        self._state = _State.STOPPED

    async def __aenter__(self) -> EmbeddedRedis:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _launch(self) -> subprocess.Popen[bytes]:
        binary = self._binary or resolve_binary()
        command = [
            binary,
            "--bind",
            _HOST,
            "--port",
            str(self._port),
            "--save",
            "",
            "--appendonly",
            "no",
            # No dump.rdb in whatever directory we were started from, even on SHUTDOWN SAVE.
            "--dir",
            tempfile.gettempdir(),
            "--dbfilename",
            f"embedded-redis-{self._port}.rdb",
            *self._extra_args,
        ]
        with open(self._log_path, "ab") as log:
            try:
                return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                raise RedisStartError(f"cannot run redis-server {binary!r}: {exc}") from exc

    async def _wait_ready(self, deadline: float) -> bool:
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False  # exited: most likely the port was still taken
            if await answers_ping(self._port):
                return True
            await asyncio.sleep(0.02)
        return False

    async def _terminate(self, grace_s: float) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, grace_s)
        if process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait)


async def answers_ping(port: int) -> bool:
    """True when a Redis server on 127.0.0.1:`port` answers PING with +PONG."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(_HOST, port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(b"*1\r\n$4\r\nPING\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 1.0) == b"+PONG\r\n"
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
