"""`routerctl keys --redis` as a real process against a real redis-server (the `redis_server`
fixture): the keys it makes, rotates and disables are what a router's RedisKeyStore under the
same prefix reads, and the secret it prints once verifies there and is stored nowhere."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import pytest
import redis.asyncio as aioredis

from router_service.errors import UnauthenticatedError
from router_service.identity.authenticator import Authenticator
from router_service.keystore.redis_store import RedisKeyStore


def keys(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "router_service.routerctl", "keys", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=dict(os.environ))


async def _router_view(url: str, prefix: str, secret: str) -> tuple[str, bool]:
    """(team, whether `secret` is accepted) as a router's store under `prefix` sees the key."""
    store = RedisKeyStore(aioredis.Redis.from_url(url), prefix=prefix, cache_ttl_s=0)
    try:
        record = await store.get("k_cli")
        assert record is not None
        try:
            await Authenticator(store.get, time.time).authenticate(secret)
        except UnauthenticatedError:
            return record.identity.team, False
        return record.identity.team, True
    finally:
        await store.stop()


async def _stored_values(url: str, prefix: str) -> str:
    client = aioredis.Redis.from_url(url)
    try:
        names = [name async for name in client.scan_iter(match=f"{prefix}*")]
        values = [await client.get(n) for n in names if await client.type(n) == b"string"]
        return repr(values)
    finally:
        await client.aclose()


def test_keys_made_with_the_redis_flag_are_the_ones_a_router_reads(redis_server: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    store = ("--redis", redis_server, "--redis-prefix", prefix)
    created = keys("create", *store, "--id", "k_cli", "--team", "ops")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("lrk_k_cli.")
    assert asyncio.run(_router_view(redis_server, prefix, secret)) == ("ops", True)
    assert secret.split(".", 1)[1] not in asyncio.run(_stored_values(redis_server, prefix))

    listed = keys("list", *store)
    assert "k_cli" in listed.stdout and secret not in listed.stdout
    assert "k_cli" not in keys("list", "--redis", redis_server, "--redis-prefix", "other:").stdout

    rotated = keys("rotate", "k_cli", "--grace-s", "0", *store)
    assert rotated.returncode == 0, rotated.stderr
    new_secret = rotated.stdout.strip()
    assert asyncio.run(_router_view(redis_server, prefix, secret)) == ("ops", False)  # no grace
    assert asyncio.run(_router_view(redis_server, prefix, new_secret)) == ("ops", True)

    disabled = keys("disable", "k_cli", *store)
    assert disabled.returncode == 0 and "k_cli disabled" in disabled.stdout
    assert asyncio.run(_router_view(redis_server, prefix, new_secret)) == ("ops", False)


@pytest.mark.parametrize("action", ["rotate", "disable"])
def test_an_unknown_key_id_is_an_error_not_a_new_key(redis_server: str, action: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    done = keys(action, "k_absent", "--redis", redis_server, "--redis-prefix", prefix)
    assert done.returncode == 1 and "no key k_absent" in done.stderr
