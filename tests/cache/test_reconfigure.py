"""A reloaded `cache:` section (SIGHUP) applied to the running cache: rules, TTL, scope, `enabled`
and the memory bound change at once and no entry is dropped; the fields that name the store are
kept as running, and said so."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from router_service.cache import metrics
from router_service.cache.cache import Hit, Miss, ResponseCache
from router_service.cache.factory import build_cache
from router_service.cache.rules import Skip
from router_service.cache.schema import CacheConfig
from router_service.clock import ManualClock
from tests.cache.helpers import ACME_SEARCH, ACME_SEARCH_2, answer, request

BASE: dict[str, Any] = {"enabled": True, "policies": ["default"], "ttl_s": 600.0}


def config(**change: Any) -> CacheConfig:
    return CacheConfig.model_validate({**BASE, **change})


def running(clock: ManualClock, **change: Any) -> tuple[ResponseCache, CacheConfig]:
    started = config(**change)
    cache = build_cache(started, clock)
    assert cache is not None
    return cache, started


async def stored(cache: ResponseCache, clock: ManualClock, text: str = "What is 2+2?") -> None:
    miss = await cache.lookup(ACME_SEARCH, request(text), "default")
    assert isinstance(miss, Miss) and await cache.store(miss, answer(created_at=clock.time()))


async def found(cache: ResponseCache, text: str = "What is 2+2?") -> Hit | Miss:
    return await cache.lookup(ACME_SEARCH, request(text), "default")


async def test_new_rules_apply_at_once_and_keep_the_entries() -> None:
    clock = ManualClock()
    cache, started = running(clock)
    await stored(cache, clock)

    others = config(policies=["cheap"])
    assert cache.reconfigure(others, started) == []
    miss = await found(cache)
    assert isinstance(miss, Miss) and miss.skip is Skip.NOT_OPTED_IN

    cache.reconfigure(started, others)  # opted in again: the entry was kept
    assert isinstance(await found(cache), Hit)


async def test_a_shorter_ttl_applies_to_reads_at_once_and_a_longer_one_brings_them_back() -> None:
    clock = ManualClock()
    cache, started = running(clock)
    await stored(cache, clock)
    await clock.advance(120.0)

    short = config(ttl_s=60.0)
    cache.reconfigure(short, started)
    assert cache.settings.ttl_s == 60.0
    assert isinstance(await found(cache), Miss)
    cache.reconfigure(started, short)  # still in the store, under the TTL it was stored with
    hit = await found(cache)
    assert isinstance(hit, Hit) and hit.age_s == pytest.approx(120.0)


async def test_enabled_false_goes_around_the_cache_until_a_reload_turns_it_on() -> None:
    clock = ManualClock()
    cache, started = running(clock)
    await stored(cache, clock)

    off = config(enabled=False)
    cache.reconfigure(off, started)
    bypass = await found(cache)
    assert isinstance(bypass, Miss) and (bypass.key, bypass.write) == ("", False)
    assert not await cache.store(bypass, answer())

    cache.reconfigure(started, off)
    assert isinstance(await found(cache), Hit)


async def test_a_new_scope_keys_new_entries() -> None:
    clock = ManualClock()
    cache, started = running(clock)
    await stored(cache, clock)
    assert isinstance(await cache.lookup(ACME_SEARCH_2, request(), "default"), Hit)  # same team

    per_key = config(scope="key")
    cache.reconfigure(per_key, started)
    assert isinstance(await cache.lookup(ACME_SEARCH_2, request(), "default"), Miss)
    cache.reconfigure(started, per_key)
    assert isinstance(await cache.lookup(ACME_SEARCH_2, request(), "default"), Hit)


async def test_a_smaller_memory_bound_evicts_the_least_recently_used() -> None:
    clock = ManualClock()
    cache, started = running(clock)
    for text in ("one", "two", "three"):
        await stored(cache, clock, text)
    assert isinstance(await found(cache, "one"), Hit)  # now the most recently used

    held = metrics.MEMORY_BYTES._value.get()
    bound = 1024  # the least a config allows: room for two of these entries, not three
    assert held * 2 / 3 <= bound < held
    small = config(memory_max_bytes=bound, max_entry_bytes=512)
    cache.reconfigure(small, started)
    assert metrics.MEMORY_BYTES._value.get() <= bound
    assert isinstance(await found(cache, "two"), Miss)  # the least recently used went
    assert isinstance(await found(cache, "one"), Hit) and isinstance(await found(cache, "three"), Hit)


async def test_fields_naming_the_store_need_a_restart_and_are_kept(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    cache, started = running(clock)
    await stored(cache, clock)

    moved = config(store="redis", redis_url="redis://:hunter2@127.0.0.1:1/0", ttl_s=300.0)
    with caplog.at_level(logging.WARNING, logger="router_service.cache.cache"):
        kept = cache.reconfigure(moved, started)
    assert kept == ["store", "redis_url"]
    assert "needs a restart" in caplog.text and "hunter2" not in caplog.text
    # Still the in-process store (no timeout armed), with the rest of the new section applied.
    assert cache.settings.timeout_s is None and cache.settings.ttl_s == 300.0
    assert isinstance(await found(cache), Hit)
