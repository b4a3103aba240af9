"""Cache entries in Redis, shared by every router replica: one round trip per get or set.

Same semantics as `MemoryCacheStore` (store.py): `SET key value PX ttl` (Redis expires the entry;
no clock of ours is involved), `GET key`. Keys are `prefix` + the facade's hex hash, so they name
no tenant and no secret. Memory is bounded by the server (`maxmemory` with an LRU or LFU
eviction policy: configure one; entries are safe to evict at any moment) and per entry by
`max_value_bytes`, checked before the value is sent.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from router_service.cache.schema import DEFAULT_PREFIX
from router_service.cache.store import CacheUnavailableError


class RedisCacheStore:
    def __init__(self, client: aioredis.Redis, *, max_value_bytes: int, prefix: str = DEFAULT_PREFIX) -> None:
        self.max_value_bytes = max_value_bytes
        self._redis = client
        self._prefix = prefix

    @property
    def prefix(self) -> str:
        return self._prefix

    @classmethod
    def from_url(
        cls, url: str, *, max_value_bytes: int, prefix: str = DEFAULT_PREFIX, timeout_s: float = 0.1
    ) -> RedisCacheStore:
        client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(client, max_value_bytes=max_value_bytes, prefix=prefix)

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._redis.get(self._prefix + key)
        except (RedisError, OSError) as exc:
            # The type only: a client error's text can carry the server address, never useful here.
            raise CacheUnavailableError(f"cache store: {type(exc).__name__}") from exc
        if value is None or isinstance(value, bytes):
            return value
        raise CacheUnavailableError("cache store: a client that decodes responses (needs bytes)")

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        if len(value) > self.max_value_bytes:
            return False
        try:
            await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))
        except (RedisError, OSError) as exc:
            raise CacheUnavailableError(f"cache store: {type(exc).__name__}") from exc
        return True

    async def close(self) -> None:
        await self._redis.aclose()
