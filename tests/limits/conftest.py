"""One store suite, two backends: every test taking `store` runs against the in-process store and
against a real redis-server (the session `redis_server` fixture, a fresh key prefix per test)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from router_service.limits.redis_store import RedisLimitStore
from router_service.limits.store import LimitStore, MemoryLimitStore


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """ "" for the in-process store, else the Redis URL (the server started only when needed; a
    sync fixture, since the session fixture starts it with asyncio.run)."""
    return "" if request.param == "memory" else str(request.getfixturevalue("redis_server"))


def make_store(backend: str) -> LimitStore:
    if not backend:
        return MemoryLimitStore()
    return RedisLimitStore.from_url(backend, prefix=f"t-{uuid.uuid4().hex[:8]}:{{limits}}:", timeout_s=5.0)


@pytest.fixture
async def store(backend: str) -> AsyncIterator[LimitStore]:
    s = make_store(backend)
    yield s
    await s.close()
