"""EmbeddedRedis: a real redis-server as a child process on loopback, for tests and the dev stack.

The binary: $REDIS_SERVER_BIN, else build/tools/redis-server (Debian's package, fetched without
root by scripts/fetch_redis.sh; `make pytest` and `make up` run it), else redis-server on PATH.
No persistence by default (`--save ''`, `--appendonly no`): a stopped server forgets everything,
like the embedded broker. It listens on 127.0.0.1 only, on a free port, and is ready when it
answers PING (RESP spoken directly: no client library needed to start it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from router_service.embedded.child_server import HOST, ChildServer, exchange

BIN_ENV_VAR = "REDIS_SERVER_BIN"
# scripts/fetch_redis.sh's destination, relative to the repository root (this file's grandparent).
_FETCHED = Path(__file__).resolve().parents[2] / "build" / "tools" / "redis-server"


class RedisStartError(RuntimeError):
    """No redis-server binary, or it exited or never answered PING."""


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


class EmbeddedRedis(ChildServer):
    """Start and stop a memory-only redis-server on 127.0.0.1 (SIGTERM: it exits at once, nothing to save)."""

    name = "redis-server"
    start_error = RedisStartError
    default_grace_s = 5.0

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout_s: float = 15.0,
    ) -> None:
        super().__init__(port, log_name="redis", log_path=log_path, startup_timeout_s=startup_timeout_s)
        self._binary = binary
        self._extra_args = extra_args

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`, for redis.asyncio.from_url."""
        return f"redis://{HOST}:{self._port}/0"

    def _commands(self) -> list[list[str]]:
        command = [
            self._binary or resolve_binary(),
            "--bind",
            HOST,
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
        return [command]

    async def _answers(self, port: int) -> bool:
        return await answers_ping(port)


async def answers_ping(port: int) -> bool:
    """True when a Redis server on 127.0.0.1:`port` answers PING with +PONG."""
    return await exchange(port, b"*1\r\n$4\r\nPING\r\n") == b"+PONG\r\n"
