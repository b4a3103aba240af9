"""The engine with a response cache (in-process store, in-process fake adapters, virtual time):
what the request path does around the library. A hit calls no adapter and reports zero cost and
its saved cost; an entry whose deployment left the catalog (a reload) or the policy is a miss;
a store that fails is a miss, never an error; a stream that breaks is not stored."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from router_service.cache.cache import CacheSettings, ResponseCache
from router_service.cache.rules import CacheRules, Directives
from router_service.cache.store import CacheUnavailableError, MemoryCacheStore
from router_service.call import CallContext
from router_service.clock import ManualClock
from router_service.domain import ChatRequest, GenerationParams, Message, Role, TextDelta
from router_service.engine import Engine, EngineParts, StreamFinish, StreamStart
from router_service.errors import ErrorClass, ProviderError, StreamInterruptedError
from router_service.resilience.live_state import LiveState
from router_service.resilience.retry import RetryBudgets
from router_service.settings import RuntimeConfig, parse_config
from tests.cache.helpers import ACME_SEARCH
from tests.fakes import HANG, FakeAdapter, RecordingObserver, done

PROVIDERS = ("a", "b")
REQUEST = ChatRequest(
    messages=(Message(Role.USER, "What is 2+2?"),), params=GenerationParams(temperature=0.0)
)


def config(models: tuple[str, ...] = PROVIDERS, price: tuple[str, str] = ("1", "2")) -> RuntimeConfig:
    return parse_config(
        {
            "routing": {"attempt_timeout_s": 1.0, "first_token_timeout_s": 1.0},
            "resilience": {"max_retries": 0},
            "providers": {p: {"kind": "openai", "base_url": "http://127.0.0.1:9"} for p in models},
            "models": [
                {"name": f"m{p}", "provider": p, "price_per_mtok": {"input": price[0], "output": price[1]}}
                for p in models
            ],
            "policies": {"default": {"models": [f"m{p}" for p in models]}},
        }
    )


class FailingStore(MemoryCacheStore):
    async def get(self, key: str) -> bytes | None:
        raise CacheUnavailableError("cache store: ConnectionError")

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        raise CacheUnavailableError("cache store: ConnectionError")


def make(store: MemoryCacheStore | None = None) -> tuple[Engine, dict[str, FakeAdapter], RecordingObserver]:
    clock = ManualClock()
    if store is None:  # not `or`: an empty store is falsy (it has a length)
        store = MemoryCacheStore(1 << 20, 1 << 16, clock.monotonic)
    cache = ResponseCache(store, CacheRules(policies=frozenset({"default"})), CacheSettings(), clock)
    adapters = {p: FakeAdapter(p, clock=clock) for p in PROVIDERS}
    observer = RecordingObserver()
    parts = EngineParts(
        live=LiveState(config().live_state),
        budgets=RetryBudgets(),
        clock=clock,
        rng=random.Random(1),
        observer=observer,
        cache=cache,
    )
    return Engine(config(), adapters, parts), adapters, observer  # type: ignore[arg-type]


def ctx(engine: Engine, **extra: Any) -> CallContext:
    return CallContext("r", engine.clock.monotonic() + 30, identity=ACME_SEARCH, **extra)


def upstream_calls(adapters: dict[str, FakeAdapter]) -> int:
    return sum(a.calls for a in adapters.values())


async def test_a_hit_calls_nothing_upstream_and_costs_nothing() -> None:
    engine, adapters, _ = make()
    first = await engine.complete(REQUEST, ctx(engine))
    assert first.cache_hit is None and first.cost_nanos > 0
    hit = await engine.complete(REQUEST, ctx(engine))
    assert upstream_calls(adapters) == 1
    assert hit.cache_hit is not None and hit.cost_nanos == 0 and hit.attempts == ()
    assert hit.cache_hit.saved_cost_nanos == first.cost_nanos
    assert hit.result == first.result and hit.deployment == first.deployment


async def test_an_entry_whose_deployment_left_the_catalog_is_a_miss() -> None:
    engine, adapters, _ = make()
    first = await engine.complete(REQUEST, ctx(engine))
    assert first.deployment.key == "a/ma"
    engine.reconfigure(config(("b",)), adapters)  # a/ma is gone
    after = await engine.complete(REQUEST, ctx(engine))
    assert after.cache_hit is None and after.deployment.key == "b/mb"
    assert upstream_calls(adapters) == 2
    # ... and the fresh answer was stored in its place.
    assert (await engine.complete(REQUEST, ctx(engine))).cache_hit is not None
    assert upstream_calls(adapters) == 2


async def test_a_failing_store_is_a_miss_and_never_an_error() -> None:
    clock = ManualClock()
    engine, adapters, observer = make(FailingStore(1 << 20, 1 << 16, clock.monotonic))
    for _ in range(3):
        answer = await engine.complete(REQUEST, ctx(engine))
        assert answer.cache_hit is None
    assert upstream_calls(adapters) == 3
    assert not observer.errors


async def test_no_store_is_honoured_and_no_cache_goes_upstream() -> None:
    engine, adapters, _ = make()
    await engine.complete(REQUEST, ctx(engine, cache=Directives(no_store=True)))
    assert (await engine.complete(REQUEST, ctx(engine))).cache_hit is None  # nothing was stored
    assert (await engine.complete(REQUEST, ctx(engine, cache=Directives(no_cache=True)))).cache_hit is None
    assert upstream_calls(adapters) == 3
    assert (await engine.complete(REQUEST, ctx(engine))).cache_hit is not None


async def test_a_broken_stream_is_not_stored_and_a_clean_one_replays() -> None:
    engine, adapters, _ = make()
    adapters["a"].script = [[TextDelta("par"), ProviderError(ErrorClass.CONNECTION, "reset")]]
    with pytest.raises(StreamInterruptedError):
        _ = [item async for item in engine.stream(REQUEST, ctx(engine, stream=True))]
    live = [item async for item in engine.stream(REQUEST, ctx(engine, stream=True))]
    assert upstream_calls(adapters) == 2
    replayed = [item async for item in engine.stream(REQUEST, ctx(engine, stream=True))]
    assert upstream_calls(adapters) == 2
    assert [type(i) for i in replayed] == [StreamStart, TextDelta, StreamFinish]
    text = "".join(i.text for i in live if isinstance(i, TextDelta))
    assert replayed[1] == TextDelta(text)
    end = replayed[-1]
    assert isinstance(end, StreamFinish) and end.cache_hit is not None and end.cost_nanos == 0
    assert end.done.usage == done().usage


async def _drain(stream: Any) -> list[Any]:
    return [item async for item in stream]


def _streaming(engine: Engine) -> asyncio.Task[list[Any]]:
    return asyncio.create_task(_drain(engine.stream(REQUEST, ctx(engine, stream=True))))


async def test_identical_concurrent_streams_follow_the_leader_and_replay_its_answer() -> None:
    engine, adapters, _ = make()
    leader = engine.stream(REQUEST, ctx(engine, stream=True))
    first = await anext(leader)  # the leader is upstream now
    assert isinstance(first, StreamStart) and first.cache_hit is None
    followers = [_streaming(engine) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(f.done() for f in followers)  # waiting for the leader's answer
    live = [first, *await _drain(leader)]
    replays = await asyncio.gather(*followers)
    assert upstream_calls(adapters) == 1
    text = "".join(i.text for i in live if isinstance(i, TextDelta))
    for items in replays:
        assert [type(i) for i in items] == [StreamStart, TextDelta, StreamFinish]
        assert items[1] == TextDelta(text)
        end = items[-1]
        assert end.cache_hit is not None and end.cost_nanos == 0 and end.attempts == ()
        assert end.cache_hit.saved_cost_nanos == live[-1].cost_nanos > 0


async def test_followers_of_a_failed_stream_make_their_own_calls() -> None:
    engine, adapters, _ = make()
    adapters["a"].script = [[TextDelta("par"), HANG]]
    leader = engine.stream(REQUEST, ctx(engine, stream=True))
    assert isinstance(await anext(leader), StreamStart)
    assert await anext(leader) == TextDelta("par")  # next: the upstream hangs
    followers = [_streaming(engine) for _ in range(2)]
    await asyncio.sleep(0)
    await leader.aclose()  # the leader's caller went away: nothing to share
    answers = await asyncio.gather(*followers)
    # Each made its own call, billed, as without coalescing: 1 (the leader's) + 2 upstream.
    assert upstream_calls(adapters) == 3
    for items in answers:
        end = items[-1]
        assert isinstance(end, StreamFinish) and end.cache_hit is None and end.cost_nanos > 0
        assert [i.text for i in items if isinstance(i, TextDelta)] == ["a"]


async def test_hits_after_a_reload_report_the_reloaded_deployment_and_its_price() -> None:
    engine, adapters, _ = make()
    first = await engine.complete(REQUEST, ctx(engine))
    before = await engine.complete(REQUEST, ctx(engine))  # a hit: its decision is remembered
    assert before.cache_hit is not None and before.decision.chain == (first.deployment.key,)
    dearer = config(price=("10", "20"))
    engine.reconfigure(dearer, adapters)
    after = await engine.complete(REQUEST, ctx(engine))
    assert after.cache_hit is not None and upstream_calls(adapters) == 1
    assert after.deployment is dearer.catalog.by_key[first.deployment.key]  # not the old object
    assert after.cache_hit.saved_cost_nanos == 10 * first.cost_nanos
    assert (after.decision.policy, after.decision.chain) == (before.decision.policy, before.decision.chain)
    assert after.decision.task_type == before.decision.task_type
