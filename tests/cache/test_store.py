"""The store semantics, run against both backends (the in-process LRU and a real redis-server):
get/set/replace, TTL (virtual time in-process, Redis PX expiry on its own clock), the per-entry size
cap; and the in-process LRU's byte bound."""

from __future__ import annotations

import asyncio

from router_service.cache.store import ENTRY_OVERHEAD_BYTES, CacheStore, MemoryCacheStore
from router_service.clock import ManualClock
from tests.cache.conftest import MAX_VALUE

K1, K2, K3 = "1" * 64, "2" * 64, "3" * 64


async def test_a_value_set_is_got_back_and_a_second_set_replaces_it(store: CacheStore) -> None:
    assert await store.get(K1) is None
    assert await store.set(K1, b"first", 60.0)
    assert await store.get(K1) == b"first"
    assert await store.set(K1, b"second", 60.0)
    assert await store.get(K1) == b"second"
    assert await store.get(K2) is None


async def test_a_value_over_the_size_cap_is_not_stored_and_changes_nothing(store: CacheStore) -> None:
    assert await store.set(K1, b"kept", 60.0)
    assert not await store.set(K1, b"x" * (MAX_VALUE + 1), 60.0)
    assert await store.get(K1) == b"kept"
    assert await store.set(K2, b"x" * MAX_VALUE, 60.0)  # at the cap: stored
    assert await store.get(K2) == b"x" * MAX_VALUE


async def test_values_expire_after_their_ttl(backend: str, store: CacheStore, clock: ManualClock) -> None:
    if not backend:
        assert await store.set(K1, b"v", 30.0)
        await clock.advance(29.9)
        assert await store.get(K1) == b"v"
        await clock.advance(0.1)
        assert await store.get(K1) is None
        return
    # Redis expires on its own clock (SET PX): a short TTL, then wait for it to be gone, however
    # slowly this loaded machine gets there (no bound on how fast).
    assert await store.set(K1, b"v", 0.05)
    assert await store.set(K2, b"long", 600.0)
    for _ in range(400):
        if await store.get(K1) is None:
            break
        await asyncio.sleep(0.05)
    assert await store.get(K1) is None
    assert await store.get(K2) == b"long"


async def test_the_in_process_lru_holds_its_byte_bound_dropping_the_least_recently_used() -> None:
    clock = ManualClock()
    value = b"v" * 1000
    one = len(K1) + len(value) + ENTRY_OVERHEAD_BYTES
    store = MemoryCacheStore(max_bytes=2 * one, max_value_bytes=MAX_VALUE, monotonic=clock.monotonic)
    assert await store.set(K1, value, 60.0)
    assert await store.set(K2, value, 60.0)
    assert await store.get(K1) == value  # K1 is now the most recently used
    assert await store.set(K3, value, 60.0)
    assert store.size_bytes == 2 * one and len(store) == 2
    assert await store.get(K2) is None  # evicted
    assert await store.get(K1) == value
    assert await store.get(K3) == value


async def test_the_lru_never_holds_more_than_its_bound_whatever_the_sizes() -> None:
    clock = ManualClock()
    store = MemoryCacheStore(max_bytes=50_000, max_value_bytes=MAX_VALUE, monotonic=clock.monotonic)
    for i in range(500):
        await store.set(f"{i:064d}", b"z" * ((i * 7919) % 9000), 60.0)
        assert store.size_bytes <= 50_000
    assert store.size_bytes == sum(
        len(k) + len(v) + ENTRY_OVERHEAD_BYTES for k, (_, v) in store._entries.items()
    )


async def test_an_entry_larger_than_the_whole_bound_is_refused() -> None:
    clock = ManualClock()
    store = MemoryCacheStore(max_bytes=1000, max_value_bytes=MAX_VALUE, monotonic=clock.monotonic)
    assert not await store.set(K1, b"x" * 2000, 60.0)
    assert (store.size_bytes, len(store)) == (0, 0)


async def test_an_expired_entry_read_gives_its_bytes_back() -> None:
    clock = ManualClock()
    store = MemoryCacheStore(max_bytes=100_000, max_value_bytes=MAX_VALUE, monotonic=clock.monotonic)
    await store.set(K1, b"v" * 100, 1.0)
    await clock.advance(1.0)
    assert await store.get(K1) is None
    assert (store.size_bytes, len(store)) == (0, 0)
