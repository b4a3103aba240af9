"""The Redis key store against a real redis-server: shared records, changes pushed to every
replica at once, and what an unreachable server means for known and unknown keys."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from router_service.embedded.redis_server import EmbeddedRedis
from router_service.errors import KeyStoreUnavailableError, UnauthenticatedError
from router_service.identity.authenticator import Authenticator
from router_service.identity.model import Identity
from router_service.keystore.admin import create_key, set_enabled
from router_service.keystore.redis_store import RedisKeyStore


def store(url: str, prefix: str, cache_ttl_s: float = 5.0) -> RedisKeyStore:
    return RedisKeyStore(aioredis.Redis.from_url(url), prefix=prefix, cache_ttl_s=cache_ttl_s)


async def test_two_replicas_share_keys_and_see_changes_at_once(redis_server: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    admin, replica = store(redis_server, prefix), store(redis_server, prefix, cache_ttl_s=300)
    await admin.start()
    await replica.start()
    try:
        record, secret = await create_key(admin, Identity(key_id="k_shared", team="search"))
        auth = Authenticator(replica.get, lambda: 0.0)
        assert (await auth.authenticate(secret)).team == "search"
        assert [r.key_id for r in await replica.list()] == ["k_shared"]
        await set_enabled(admin, "k_shared", False)  # the replica caches for 300 s: pub/sub evicts
        for _ in range(200):
            current = await replica.get("k_shared")
            if current is not None and not current.enabled:
                break
            await asyncio.sleep(0.02)
        with pytest.raises(UnauthenticatedError, match="disabled"):
            await auth.authenticate(secret)
        assert await replica.get("k_missing") is None
        assert dataclasses.replace(record, enabled=False) == await replica.get("k_shared")
    finally:
        await admin.stop()
        await replica.stop()


async def test_unreachable_redis_keeps_cached_keys_and_refuses_unknown_ones(tmp_path: Path) -> None:
    server = EmbeddedRedis(log_path=tmp_path / "redis.log")
    await server.start()
    keys = store(server.url, "t:", cache_ttl_s=0.0)
    try:
        _, secret = await create_key(keys, Identity(key_id="k_cached"))
        auth = Authenticator(keys.get, lambda: 0.0)
        await auth.authenticate(secret)
        await server.stop()
        assert (await auth.authenticate(secret)).key_id == "k_cached"  # stale, counted
        assert keys.stale_reads >= 1
        with pytest.raises(KeyStoreUnavailableError):
            await keys.get("k_never_seen")
    finally:
        await keys.stop()
        if server.running:
            await server.stop()


async def test_a_reload_rereads_cached_records_and_keeps_the_unchanged_ones(redis_server: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    replica = store(redis_server, prefix, cache_ttl_s=300)
    client = aioredis.Redis.from_url(redis_server)
    try:
        for key_id in ("k_same", "k_edited"):
            await create_key(replica, Identity(key_id=key_id, team="before"))
        same, edited = await replica.get("k_same"), await replica.get("k_edited")
        # Written behind the store's back (no pub/sub message), as a change missed while its
        # channel was down would be: the cached record stays for its TTL, until a reload.
        raw = await client.get(f"{prefix}key:k_edited")
        assert isinstance(raw, bytes)
        await client.set(f"{prefix}key:k_edited", raw.replace(b'"team":"before"', b'"team":"after"'))
        assert await replica.get("k_edited") is edited
        replica.reload()
        assert await replica.get("k_same") is same  # unchanged: the verified secret stays cached
        after = await replica.get("k_edited")
        assert after is not None and after.identity.team == "after"
    finally:
        await client.aclose()
        await replica.stop()
