"""The facade on both backends: hits and misses per tenant, directives, freshness, what is never
stored; failures (a stopped or silent real Redis, a corrupt value) answered as misses and counted;
coalescing of concurrent identical misses; and no secret in any key or value."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from router_service.cache.cache import CacheSettings, Hit, Miss, ResponseCache
from router_service.cache.entry import CachedAnswer
from router_service.cache.key import ScopeBy
from router_service.cache.redis_store import RedisCacheStore
from router_service.cache.rules import CacheRules, Directives, Skip
from router_service.cache.store import CacheStore, MemoryCacheStore
from router_service.clock import SYSTEM_CLOCK, ManualClock
from router_service.embedded.redis_server import EmbeddedRedis
from router_service.identity.authenticator import Authenticator
from router_service.identity.key_secret import hash_secret, new_secret
from router_service.identity.model import Identity
from router_service.identity.records import Credential, KeyRecord
from router_service.keystore.base import MemoryKeyStore
from tests.cache.conftest import MAX_VALUE, make_cache
from tests.cache.helpers import ACME_SEARCH, ACME_SEARCH_2, GLOBEX_SEARCH, answer, request


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"llmrouter_cache_{name}_total", labels) or 0.0


def fresh_answer(clock: ManualClock, content: str = "4") -> CachedAnswer:
    return answer(content, created_at=clock.time())


@pytest.fixture
def cache(store: CacheStore, clock: ManualClock) -> ResponseCache:
    return make_cache(store, clock)


async def test_a_stored_answer_hits_its_tenant_and_no_other(cache: ResponseCache, clock: ManualClock) -> None:
    r = request()
    miss = await cache.lookup(ACME_SEARCH, r, "default")
    assert isinstance(miss, Miss) and miss.write and len(miss.key) == 64
    hits, lookups = metric("hits"), metric("lookups")
    assert await cache.store(miss, fresh_answer(clock))
    await clock.advance(5.0)

    hit = await cache.lookup(ACME_SEARCH_2, r, "default")  # same team: shares
    assert isinstance(hit, Hit) and hit.entry.content == "4" and hit.age_s == pytest.approx(5.0)
    assert isinstance(await cache.lookup(GLOBEX_SEARCH, r, "default"), Miss)  # byte-identical, other customer
    assert isinstance(await cache.lookup(ACME_SEARCH, r, "cheap"), Miss)  # another policy's answer
    assert (metric("hits"), metric("lookups")) == (hits + 1, lookups + 3)


async def test_key_scope_keeps_each_keys_entries_apart(store: CacheStore, clock: ManualClock) -> None:
    cache = make_cache(store, clock, scope_by=ScopeBy.KEY)
    miss = await cache.lookup(ACME_SEARCH, request(), "default")
    assert isinstance(miss, Miss)
    await cache.store(miss, fresh_answer(clock))
    assert isinstance(await cache.lookup(ACME_SEARCH, request(), "default"), Hit)
    assert isinstance(await cache.lookup(ACME_SEARCH_2, request(), "default"), Miss)


async def test_an_entry_past_the_ttl_or_the_callers_max_age_is_a_miss(
    store: CacheStore, clock: ManualClock
) -> None:
    cache = make_cache(store, clock, ttl_s=60.0)
    miss = await cache.lookup(ACME_SEARCH, request(), "default")
    assert isinstance(miss, Miss)
    await cache.store(miss, fresh_answer(clock))
    await clock.advance(20.0)
    assert isinstance(await cache.lookup(ACME_SEARCH, request(), "default", Directives(max_age_s=30)), Hit)
    stale = await cache.lookup(ACME_SEARCH, request(), "default", Directives(max_age_s=10))
    assert isinstance(stale, Miss) and stale.write  # the fresh answer will replace it
    await clock.advance(41.0)
    assert isinstance(await cache.lookup(ACME_SEARCH, request(), "default"), Miss)


async def test_no_cache_reads_nothing_and_no_store_writes_nothing(
    cache: ResponseCache, clock: ManualClock
) -> None:
    first = await cache.lookup(ACME_SEARCH, request(), "default")
    assert isinstance(first, Miss)
    await cache.store(first, fresh_answer(clock, "old"))
    lookups = metric("lookups")
    no_cache = await cache.lookup(ACME_SEARCH, request(), "default", Directives(no_cache=True))
    assert isinstance(no_cache, Miss) and no_cache.write and metric("lookups") == lookups
    await cache.store(no_cache, fresh_answer(clock, "new"))
    no_store = await cache.lookup(ACME_SEARCH, request(), "default", Directives(no_store=True))
    assert isinstance(no_store, Hit) and no_store.entry.content == "new"
    other = request("Something else?")
    miss = await cache.lookup(ACME_SEARCH, other, "default", Directives(no_store=True))
    assert isinstance(miss, Miss) and not miss.write
    assert not await cache.store(miss, fresh_answer(clock))
    assert isinstance(await cache.lookup(ACME_SEARCH, other, "default"), Miss)


async def test_a_request_that_is_not_cacheable_goes_around_the_cache(
    store: CacheStore, clock: ManualClock
) -> None:
    cache = make_cache(store, clock, CacheRules(policies=frozenset({"default"})))
    before = metric("skips", reason="nondeterministic")
    miss = await cache.lookup(ACME_SEARCH, request(temperature=0.9), "default")
    assert miss == Miss("", False, Skip.NONDETERMINISTIC)
    assert metric("skips", reason="nondeterministic") == before + 1
    assert not await cache.store(miss, fresh_answer(clock))
    assert (await cache.lookup(ACME_SEARCH, request(), "cheap")).skip is Skip.NOT_OPTED_IN  # type: ignore[union-attr]


async def test_an_entry_over_the_size_cap_is_not_stored_and_counted(
    cache: ResponseCache, clock: ManualClock
) -> None:
    miss = await cache.lookup(ACME_SEARCH, request(), "default")
    assert isinstance(miss, Miss)
    before = metric("oversize")
    incompressible = os.urandom(MAX_VALUE).hex()
    assert not await cache.store(miss, fresh_answer(clock, incompressible))
    assert metric("oversize") == before + 1
    assert isinstance(await cache.lookup(ACME_SEARCH, request(), "default"), Miss)


async def test_a_corrupt_value_is_a_miss_and_counted(store: CacheStore, clock: ManualClock) -> None:
    cache = make_cache(store, clock)
    miss = await cache.lookup(ACME_SEARCH, request(), "default")
    assert isinstance(miss, Miss)
    await store.set(miss.key, b"\x01garbage", 60.0)
    before = metric("errors", operation="decode")
    assert isinstance(await cache.lookup(ACME_SEARCH, request(), "default"), Miss)
    assert metric("errors", operation="decode") == before + 1


async def test_a_value_copied_under_another_tenants_key_never_answers_it(
    store: CacheStore, clock: ManualClock
) -> None:
    cache = make_cache(store, clock)
    mine = await cache.lookup(ACME_SEARCH, request(), "default")
    theirs = await cache.lookup(GLOBEX_SEARCH, request(), "default")
    assert isinstance(mine, Miss) and isinstance(theirs, Miss)
    await cache.store(mine, fresh_answer(clock, "acme's answer"))
    copied = await store.get(mine.key)
    assert copied is not None
    await store.set(theirs.key, copied, 60.0)  # a bug or an operator moved it
    assert isinstance(await cache.lookup(GLOBEX_SEARCH, request(), "default"), Miss)


# --- the store failing --------------------------------------------------------------------------


async def test_a_redis_stopped_mid_use_turns_lookups_into_counted_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = EmbeddedRedis(log_path=tmp_path / "redis.log")
    await server.start()
    clock = ManualClock()
    store = RedisCacheStore.from_url(server.url, max_value_bytes=MAX_VALUE, timeout_s=0.5)
    cache = make_cache(store, clock, timeout_s=2.0)
    try:
        miss = await cache.lookup(ACME_SEARCH, request(), "default")
        assert isinstance(miss, Miss) and await cache.store(miss, fresh_answer(clock))
        assert isinstance(await cache.lookup(ACME_SEARCH, request(), "default"), Hit)
        await server.stop()
        gets, sets = metric("errors", operation="get"), metric("errors", operation="set")
        with caplog.at_level(logging.WARNING, logger="router_service.cache.cache"):
            for _ in range(3):
                after = await cache.lookup(ACME_SEARCH, request(), "default")
                assert isinstance(after, Miss) and after.write
                assert not await cache.store(after, fresh_answer(clock))
        assert metric("errors", operation="get") == gets + 3
        assert metric("errors", operation="set") == sets + 3
        logged = [r.getMessage() for r in caplog.records]
        assert len(logged) == 2  # once per operation within the log interval, not once per call
        assert all(miss.key not in m and "ConnectionError" in m for m in logged)
    finally:
        await cache.close()
        await server.stop()


async def test_a_store_that_never_answers_is_a_miss_after_the_timeout() -> None:
    """A real socket that accepts and never replies: the facade's bound ends the wait."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisCacheStore.from_url(f"redis://127.0.0.1:{port}/0", max_value_bytes=MAX_VALUE, timeout_s=30.0)
    cache = ResponseCache(
        store, CacheRules(policies=frozenset({"*"})), CacheSettings(timeout_s=0.2), SYSTEM_CLOCK
    )
    try:
        before = metric("errors", operation="get")
        assert isinstance(await cache.lookup(ACME_SEARCH, request(), "default"), Miss)
        assert metric("errors", operation="get") == before + 1
    finally:
        await cache.close()
        server.close()
        await server.wait_closed()


# --- coalescing ---------------------------------------------------------------------------------


async def test_concurrent_identical_misses_make_one_upstream_call(
    cache: ResponseCache, clock: ManualClock
) -> None:
    calls = arrived = 0
    all_arrived, release = asyncio.Event(), asyncio.Event()

    async def upstream() -> CachedAnswer:
        nonlocal calls
        calls += 1
        await release.wait()
        return fresh_answer(clock, "shared")

    async def call(i: int) -> tuple[str, bool]:
        nonlocal arrived
        found = await cache.lookup(
            ACME_SEARCH_2 if i % 2 else ACME_SEARCH, request(), "default"
        )  # team-mates
        assert isinstance(found, Miss)
        arrived += 1
        if arrived == 20:
            all_arrived.set()
        # No suspension between arriving and joining: the first becomes the leader, the rest follow.
        result, shared = await cache.coalesce(found, upstream, "complete")
        if not shared:
            await cache.store(found, result)
        return result.content, shared

    tasks = [asyncio.create_task(call(i)) for i in range(20)]
    await all_arrived.wait()  # every lookup missed (Redis: real round trips) before the answer exists
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert sorted(results) == [("shared", False)] + [("shared", True)] * 19
    assert isinstance(await cache.lookup(GLOBEX_SEARCH, request(), "default"), Miss)  # per tenant


async def test_identical_misses_of_two_tenants_are_not_coalesced(
    cache: ResponseCache, clock: ManualClock
) -> None:
    calls: list[str] = []
    release = asyncio.Event()

    def upstream(who: str) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            calls.append(who)
            await release.wait()
            return who

        return run

    a = await cache.lookup(ACME_SEARCH, request(), "default")
    g = await cache.lookup(GLOBEX_SEARCH, request(), "default")
    assert isinstance(a, Miss) and isinstance(g, Miss)
    ta = asyncio.create_task(cache.coalesce(a, upstream("acme")))
    tg = asyncio.create_task(cache.coalesce(g, upstream("globex")))
    await asyncio.sleep(0)
    release.set()
    assert (await ta, await tg) == (("acme", False), ("globex", False))
    assert sorted(calls) == ["acme", "globex"]


# --- no secret in any key or value --------------------------------------------------------------


async def _everything_stored(store: CacheStore, backend: str) -> list[bytes]:
    """Every key and (inflated) value the store holds."""
    blobs: list[bytes] = []
    if isinstance(store, MemoryCacheStore):
        items = [(k.encode(), v) for k, (_, v) in store._entries.items()]
    else:
        assert isinstance(store, RedisCacheStore)
        raw = aioredis.Redis.from_url(backend)
        try:
            keys = [k async for k in raw.scan_iter(match=store.prefix + "*")]
            items = [(k, await raw.get(k) or b"") for k in keys]
        finally:
            await raw.aclose()
    for k, v in items:
        blobs += [k, v, zlib.decompress(v[1:]) if v[:1] == b"\x01" else v]
    return blobs


@pytest.mark.parametrize("scope_by", [ScopeBy.TEAM, ScopeBy.KEY])
async def test_no_secret_in_any_key_or_value(
    backend: str, store: CacheStore, clock: ManualClock, scope_by: ScopeBy
) -> None:
    key_id = "k_canary_" + uuid.uuid4().hex[:8]
    secret = new_secret(key_id)
    record = KeyRecord(
        Identity(key_id, team="canary-team", customer="acme"), (Credential(hash_secret(secret)),)
    )
    identity = await Authenticator(MemoryKeyStore([record]).get, clock.time).authenticate(secret)
    cache = make_cache(store, clock, scope_by=scope_by)
    r = request()
    tagged = type(r)(r.messages, r.selection, r.params, tags={"authorization": f"Bearer {secret}"})
    miss = await cache.lookup(identity, tagged, "default")
    assert isinstance(miss, Miss)
    assert await cache.store(miss, fresh_answer(clock, "a plain answer"))
    assert isinstance(await cache.lookup(identity, r, "default"), Hit)  # the tags did not matter

    blobs = await _everything_stored(store, backend)
    assert blobs
    canaries = [secret, secret.split(".", 1)[1], key_id, "canary-team", "acme"]
    for blob in blobs:
        for canary in canaries:
            assert canary.encode() not in blob
