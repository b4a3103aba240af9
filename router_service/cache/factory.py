"""Build the cache the config asks for (app.py calls this; the only place naming a store)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router_service.cache.cache import CacheSettings, ResponseCache
from router_service.cache.schema import CacheConfig
from router_service.cache.store import CacheStore, MemoryCacheStore
from router_service.clock import Clock

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from router_service.cache.redis_store import RedisCacheStore


def build_cache(config: CacheConfig, clock: Clock) -> ResponseCache | None:
    """None when the cache is off: the request path then skips it entirely."""
    if not config.enabled:
        return None
    store: CacheStore
    timeout_s: float | None = None
    if config.store == "redis":
        store = _redis_store()(
            _redis_client(config.redis_url.get_secret_value(), config.store_timeout_s),
            max_value_bytes=config.max_entry_bytes,
            prefix=config.redis_prefix,
        )
        timeout_s = config.store_timeout_s
    else:
        store = MemoryCacheStore(config.memory_max_bytes, config.max_entry_bytes, clock.monotonic)
    settings = CacheSettings(
        ttl_s=config.ttl_s, scope_by=config.scope_by, timeout_s=timeout_s, coalesce=config.coalesce
    )
    return ResponseCache(store, config.to_rules(), settings, clock)


def _redis_store() -> type[RedisCacheStore]:
    # Imported only when Redis is configured: redis-py loads OpenTelemetry's SDK at import, which a
    # router with tracing off must not (tests/integration/test_tracing.py).
    from router_service.cache.redis_store import RedisCacheStore

    return RedisCacheStore


def _redis_client(url: str, timeout_s: float) -> Redis:
    from router_service.redis_client import redis_from_url  # the same lazy import as above

    return redis_from_url(url, timeout_s=timeout_s)
