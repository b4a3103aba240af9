"""Keys in Redis, shared by every router replica.

Why Redis: it is what runs next to gateways like this one already (LiteLLM, Kong, Envoy's global
rate limit service keep their shared state there), the budgets and the response cache of this
service use the same server, and one key lookup is one GET.

Layout: `<prefix>key:<key id>` holds the key's definition as JSON (the key file's schema, hashes
only); `<prefix>keys` is the set of key ids; every change publishes the key id on
`<prefix>keys:changed`.

The request path never waits for Redis on a known key: records are cached in process for
`cache_ttl_s` (and unknown ids for as long, so random ids cannot hammer the server), and a change
published by `put` evicts the cached record on every replica at once. When Redis is unreachable a
cached record stays in use (stale, counted) and an uncached key id fails with UNAVAILABLE: never
an unverified caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError

from router_service.errors import KeyStoreUnavailableError
from router_service.identity.records import KeyRecord
from router_service.keystore.schema import KeyConfig

log = logging.getLogger(__name__)


class RedisKeyStore:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "llmrouter:",
        cache_ttl_s: float = 5.0,
        cache_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = cache_ttl_s
        self._size = cache_size
        self._clock = clock
        # key id -> (fetched at, record or None for "no such key")
        self._cache: OrderedDict[str, tuple[float, KeyRecord | None]] = OrderedDict()
        self._listener: asyncio.Task[None] | None = None
        self.stale_reads = 0
        self.failures = 0

    @property
    def _channel(self) -> str:
        return f"{self._prefix}keys:changed"

    def _key(self, key_id: str) -> str:
        return f"{self._prefix}key:{key_id}"

    async def start(self) -> None:
        if self._listener is None:
            ready = asyncio.Event()
            self._listener = asyncio.create_task(self._listen(ready), name="key-store-invalidations")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), 5.0)

    async def stop(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def get(self, key_id: str) -> KeyRecord | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            raw = await self._redis.get(self._key(key_id))
        except (RedisError, OSError) as exc:
            self.failures += 1
            if cached is not None:
                self.stale_reads += 1
                return cached[1]
            log.warning("key store unreachable: %s", type(exc).__name__)
            raise KeyStoreUnavailableError("key store unavailable; retry") from None
        record = None if raw is None else _parse(key_id, raw)
        if cached is not None and cached[1] == record:
            record = cached[1]  # unchanged: the same object keeps verified secrets cached
        self._remember(key_id, now, record)
        return record

    async def put(self, record: KeyRecord) -> None:
        document = KeyConfig.from_record(record).model_dump_json(exclude_defaults=True)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(record.key_id), document)
            pipe.sadd(f"{self._prefix}keys", record.key_id)
            pipe.publish(self._channel, record.key_id)
            await pipe.execute()
        self._cache.pop(record.key_id, None)

    async def list(self) -> list[KeyRecord]:
        ids = sorted(
            k.decode() if isinstance(k, bytes) else k
            for k in await self._redis.smembers(f"{self._prefix}keys")
        )
        records = []
        for key_id in ids:
            raw = await self._redis.get(self._key(key_id))
            record = None if raw is None else _parse(key_id, raw)
            if record is not None:
                records.append(record)
        return records

    def reload(self) -> bool:
        """Every cached record is re-read from Redis on its next use (pub/sub already evicts what
        changed; this also covers a change made while the channel was down). Unchanged records keep
        their object, so verified secrets stay cached. False: what changed is known only then."""
        self._cache = OrderedDict((k, (-math.inf, record)) for k, (_, record) in self._cache.items())
        return False

    def _remember(self, key_id: str, now: float, record: KeyRecord | None) -> None:
        self._cache[key_id] = (now, record)
        self._cache.move_to_end(key_id)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)

    async def _listen(self, ready: asyncio.Event) -> None:
        """Evict a key id as soon as any replica changes it; reconnect after failures."""
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    # A change missed while disconnected would otherwise live for a TTL.
                    self._cache.clear()
                    ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            self._cache.pop(data.decode() if isinstance(data, bytes) else str(data), None)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("key store invalidation channel lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)


def _parse(key_id: str, raw: bytes | str) -> KeyRecord | None:
    try:
        return KeyConfig.model_validate_json(raw).to_record()
    except ValidationError as exc:
        # A bad record refuses that key only (logged once per fetch), never the whole store.
        log.error("key store: invalid record for %s: %d problems", key_id, exc.error_count())
        return None
