"""EmbeddedRedis: a real redis-server (Debian's, from scripts/fetch_redis.sh) on loopback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis.asyncio as redis

from router_service.embedded.redis_server import BIN_ENV_VAR, EmbeddedRedis, RedisStartError, answers_ping


async def test_the_session_server_round_trips_commands(redis_server: str) -> None:
    client = redis.from_url(redis_server, decode_responses=True)
    key = f"test:{uuid.uuid4().hex}"
    try:
        assert await client.set(key, "v1", ex=60)
        assert await client.get(key) == "v1"
        assert await client.incrby(f"{key}:n", 5) == 5
        assert await client.incrby(f"{key}:n", 2) == 7
        # No persistence: nothing is ever written to disk.
        assert (await client.config_get("save"))["save"] == ""
        assert (await client.config_get("appendonly"))["appendonly"] == "no"
    finally:
        await client.delete(key, f"{key}:n")
        await client.aclose()


async def test_a_stopped_server_is_gone_and_a_new_one_starts_empty(tmp_path: Path) -> None:
    server = EmbeddedRedis(log_path=tmp_path / "redis.log")
    await server.start()
    await server.start()  # idempotent while running
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    client = redis.from_url(server.url)
    await client.set("k", "v")
    await client.aclose()

    await server.stop()
    assert not server.running
    assert not await answers_ping(server.port)
    await server.stop()  # idempotent

    await server.start()  # same port, memory only: empty
    client = redis.from_url(server.url)
    try:
        assert await client.get("k") is None
    finally:
        await client.aclose()
        await server.stop()


async def test_a_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BIN_ENV_VAR, str(tmp_path / "no-such-redis"))
    server = EmbeddedRedis(log_path=tmp_path / "redis.log", startup_timeout_s=1.0)

    with pytest.raises(RedisStartError, match="no-such-redis"):
        await server.start()
