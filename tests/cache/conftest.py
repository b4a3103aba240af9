"""One store suite, two backends: every test taking `backend` runs against the in-process LRU and
against a real redis-server (the session `redis_server` fixture, a fresh key prefix per test)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from router_service.cache.cache import CacheSettings, ResponseCache
from router_service.cache.key import ScopeBy
from router_service.cache.redis_store import RedisCacheStore
from router_service.cache.rules import CacheRules
from router_service.cache.store import CacheStore, MemoryCacheStore
from router_service.clock import ManualClock

MAX_VALUE = 64 * 1024
OPT_IN_ALL = CacheRules(policies=frozenset({"*"}))


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """ "" for the in-process store, else the Redis URL (the server started only when needed)."""
    return "" if request.param == "memory" else str(request.getfixturevalue("redis_server"))


def make_store(backend: str, clock: ManualClock, *, max_bytes: int = 1 << 24) -> CacheStore:
    if not backend:
        return MemoryCacheStore(max_bytes, MAX_VALUE, clock.monotonic)
    prefix = f"t-{uuid.uuid4().hex[:8]}:cache:"
    return RedisCacheStore.from_url(backend, max_value_bytes=MAX_VALUE, prefix=prefix, timeout_s=5.0)


def make_cache(
    store: CacheStore,
    clock: ManualClock,
    rules: CacheRules = OPT_IN_ALL,
    *,
    scope_by: ScopeBy = ScopeBy.TEAM,
    ttl_s: float = 3600.0,
    timeout_s: float | None = None,
) -> ResponseCache:
    settings = CacheSettings(ttl_s=ttl_s, scope_by=scope_by, timeout_s=timeout_s)
    return ResponseCache(store, rules, settings, clock)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def store(backend: str, clock: ManualClock) -> AsyncIterator[CacheStore]:
    s = make_store(backend, clock)
    yield s
    await s.close()
