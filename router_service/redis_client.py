"""The one way this package opens a Redis client from a configured URL (key store, limits, cache).

redis-py is imported inside the function, never at module level: importing it loads
OpenTelemetry's SDK, which a router with tracing off and no Redis configured must not load
(tests/integration/test_tracing.py). Callers import this module only once Redis is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis


def redis_from_url(url: str, *, timeout_s: float | None = None) -> Redis:
    """An asyncio client of `url` (redis:// or rediss://, credentials and db in the URL). With
    `timeout_s`, a connect or a reply slower than that fails (the store's failure policy then
    decides); None waits as long as the OS does."""
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
