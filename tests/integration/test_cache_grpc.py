"""The response cache on the request path, over real gRPC: a real router (`auth.mode: required`,
two customers' keys), real simulated providers counting the upstream requests, and the cache in a
real redis-server (the `redis_server` fixture, or a test's own EmbeddedRedis when it is stopped).

Hits and misses per tenant (byte-identical requests of two customers never share an entry), the
caller's directives, TTL, a Stream replayed as routing, deltas and end, identical concurrent
misses coalesced into one upstream request, Redis stopped mid-load, and no secret in any key or
value the cache wrote."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import redis.asyncio as aioredis
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.cache import metrics as cache_metrics
from router_service.embedded.broker import EmbeddedBroker
from router_service.embedded.redis_server import EmbeddedRedis
from router_service.identity.model import Identity
from router_service.keystore.admin import create_key
from router_service.keystore.file_store import FileKeyStore
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict
from tests.integration.test_events import events_config, read_events

DETERMINISTIC = pb.GenerationOptions(temperature=0.0)


class Cached:
    """A running router with the cache on, and a key per tenant."""

    def __init__(self, app: RouterApp, sims: Sims, secrets: dict[str, str], prefix: str) -> None:
        self.app, self.sims, self.secrets, self.prefix = app, sims, secrets, prefix
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        self.stub = pb_grpc.RouterServiceStub(self.channel)

    def auth(self, key: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {self.secrets[key]}"),)

    async def complete(self, key: str, text: str = "What is 2+2?", **request: Any) -> pb.CompleteResponse:
        message = pb.CompleteRequest(chat=chat(text, options=DETERMINISTIC), **request)
        response: pb.CompleteResponse = await self.stub.Complete(message, metadata=self.auth(key), timeout=30)
        return response

    async def stream(self, key: str, text: str = "Tell me a story") -> list[pb.StreamResponse]:
        message = pb.StreamRequest(chat=chat(text, options=DETERMINISTIC))
        return [m async for m in self.stub.Stream(message, metadata=self.auth(key), timeout=30)]

    async def route(self, key: str, text: str = "What is 2+2?", **request: Any) -> pb.RouteDecision:
        message = pb.RouteRequest(chat=chat(text, options=DETERMINISTIC), **request)
        response: pb.RouteResponse = await self.stub.Route(message, metadata=self.auth(key), timeout=30)
        return response.decision

    async def upstream_requests(self) -> int:
        return sum([int((await self.sims.stats(name))["requests"]) for name in self.sims])


async def _keys(path: Path) -> dict[str, str]:
    store = FileKeyStore(path, poll_s=0)
    await store.start()
    secrets = {}
    for key_id, customer in (("k_acme", "acme"), ("k_globex", "globex")):
        _, secrets[key_id] = await create_key(
            store, Identity(key_id=key_id, team="search", customer=customer)
        )
    return secrets


async def start_cached(
    sims: Sims,
    tmp_path: Path,
    redis_url: str,
    attempt_timeout_s: float = 10.0,
    events: dict[str, Any] | None = None,
    openai_http: bool = False,
    **cache: Any,
) -> Cached:
    secrets = await _keys(tmp_path / "keys.yaml")
    prefix = f"test-cache-{uuid.uuid4().hex[:8]}:"  # the shared server: this test's own entries
    config = router_config_dict(sims, attempt_timeout_s=attempt_timeout_s)
    config["auth"] = {"mode": "required", "keys_file": str(tmp_path / "keys.yaml"), "keys_file_poll_s": 0}
    config["cache"] = {
        "enabled": True,
        "store": "redis",
        "redis_url": redis_url,
        "redis_prefix": prefix,
        "store_timeout_s": 0.5,
        "policies": ["default"],
        **cache,
    }
    if events is not None:
        config["events"] = events
    if openai_http:
        config["server"]["openai_http"] = {"listen": "127.0.0.1:0"}
    app = RouterApp(parse_config(config))
    await app.start()
    return Cached(app, sims, secrets, prefix)


@contextlib.asynccontextmanager
async def cache_router(sims: Sims, tmp_path: Path, redis_url: str, **options: Any) -> AsyncIterator[Cached]:
    """A router with the cache on (`start_cached`'s options), stopped on exit."""
    running = await start_cached(sims, tmp_path, redis_url, **options)
    try:
        yield running
    finally:
        await running.channel.close()
        await running.app.stop(grace_s=1)


@pytest.fixture
async def cached(sims: Sims, redis_server: str, tmp_path: Path) -> AsyncIterator[Cached]:
    async with cache_router(sims, tmp_path, redis_server) as running:
        yield running


def _seconds(d: Duration) -> float:
    return d.seconds + d.nanos / 1e9


def nanos(money: Any) -> int:
    return int(money.units) * 1_000_000_000 + int(money.nanos)


async def test_a_repeat_is_a_hit_of_its_own_tenant_only(cached: Cached) -> None:
    first = await cached.complete("k_acme")
    assert not first.routing.HasField("cache")  # a miss: answered upstream, billed
    assert nanos(first.cost) > 0 and len(first.routing.attempts) == 1
    assert await cached.upstream_requests() == 1

    again = await cached.complete("k_acme")
    assert again.routing.cache.hit
    assert again.message == first.message and again.usage == first.usage
    assert nanos(again.cost) == 0 and len(again.routing.attempts) == 0
    assert nanos(again.routing.cache.saved_cost) == nanos(first.cost)
    assert _seconds(again.routing.cache.age) >= 0
    assert (again.routing.provider, again.routing.model) == (first.routing.provider, first.routing.model)
    assert await cached.upstream_requests() == 1

    # Another customer, byte-identical request: never the first customer's entry.
    other = await cached.complete("k_globex")
    assert not other.routing.HasField("cache")
    assert await cached.upstream_requests() == 2
    assert (await cached.complete("k_globex")).routing.cache.hit
    assert await cached.upstream_requests() == 2

    # Route says whether a call would be answered from the cache now, without calling upstream.
    assert (await cached.route("k_acme")).cache.hit
    assert not (await cached.route("k_acme", "Something never asked")).HasField("cache")
    assert await cached.upstream_requests() == 2


async def test_directives_no_cache_no_store_and_max_age(cached: Cached) -> None:
    await cached.complete("k_acme")
    assert await cached.upstream_requests() == 1
    fresh = await cached.complete("k_acme", cache=pb.CacheDirectives(no_cache=True))
    assert not fresh.routing.HasField("cache")
    assert await cached.upstream_requests() == 2
    never = await cached.complete("k_acme", cache=pb.CacheDirectives(max_age=Duration(seconds=0)))
    assert not never.routing.HasField("cache")
    assert await cached.upstream_requests() == 3
    assert not (await cached.route("k_acme", cache=pb.CacheDirectives(max_age=Duration()))).HasField("cache")
    young = await cached.complete("k_acme", cache=pb.CacheDirectives(max_age=Duration(seconds=600)))
    assert young.routing.cache.hit
    assert await cached.upstream_requests() == 3

    # no_store: answered upstream, and nothing is written for the next call.
    await cached.complete("k_acme", "Not to be kept", cache=pb.CacheDirectives(no_store=True))
    assert not (await cached.complete("k_acme", "Not to be kept")).routing.HasField("cache")
    assert await cached.upstream_requests() == 5


async def test_a_negative_max_age_is_invalid_argument_and_calls_nothing(cached: Cached) -> None:
    bad = pb.CacheDirectives(max_age=Duration(seconds=-5))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cached.complete("k_acme", cache=bad)
    err = caught.value
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    violations = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            violations += [v.field for v in request.field_violations]
    assert violations == ["cache.max_age"]
    assert await cached.upstream_requests() == 0


async def test_an_entry_expires_after_its_ttl(sims: Sims, redis_server: str, tmp_path: Path) -> None:
    ttl_s = 2.0
    running = await start_cached(sims, tmp_path, redis_server, ttl_s=ttl_s)
    try:
        await running.complete("k_acme")
        stored_at = asyncio.get_running_loop().time()
        assert (await running.route("k_acme")).cache.hit
        await asyncio.sleep(max(0.0, stored_at + ttl_s + 0.2 - asyncio.get_running_loop().time()))
        assert not (await running.route("k_acme")).HasField("cache")
        assert not (await running.complete("k_acme")).routing.HasField("cache")
        assert await running.upstream_requests() == 2
    finally:
        await running.channel.close()
        await running.app.stop(grace_s=1)


async def test_a_reload_turns_the_cache_off_and_on_keeping_its_entries(cached: Cached) -> None:
    # What SIGHUP does (serve's handler calls RouterApp.reload with the file read again).
    running = cached.app.config
    await cached.complete("k_acme")
    assert (await cached.route("k_acme")).cache.hit
    off = dataclasses.replace(running, cache=running.cache.model_copy(update={"enabled": False}))
    cached.app.reload(off)
    assert not (await cached.complete("k_acme")).routing.HasField("cache")  # around the cache
    assert await cached.upstream_requests() == 2
    cached.app.reload(running)
    assert (await cached.complete("k_acme")).routing.cache.hit  # the entry was kept
    assert await cached.upstream_requests() == 2


async def test_a_stream_hit_replays_routing_deltas_and_end(cached: Cached) -> None:
    live = await cached.stream("k_acme")
    assert await cached.upstream_requests() == 1
    replayed = await cached.stream("k_acme")
    assert await cached.upstream_requests() == 1

    kinds = [m.WhichOneof("event") for m in replayed]
    assert kinds[0] == "routing" and kinds[-1] == "end" and set(kinds[1:-1]) == {"delta"}
    text = "".join(m.delta.text for m in live if m.HasField("delta"))
    assert text and "".join(m.delta.text for m in replayed if m.HasField("delta")) == text
    start, end = replayed[0].routing, replayed[-1].end
    assert start.cache.hit and end.routing.cache.hit
    assert not live[0].routing.HasField("cache") and not live[-1].end.routing.HasField("cache")
    assert end.usage == live[-1].end.usage and end.finish_reason == live[-1].end.finish_reason
    assert nanos(end.cost) == 0 and len(end.routing.attempts) == 0
    assert nanos(end.routing.cache.saved_cost) == nanos(live[-1].end.cost) > 0
    assert (start.provider, start.model) == (live[0].routing.provider, live[0].routing.model)

    # A Complete of the same request is answered by the same entry.
    assert (await cached.complete("k_acme", "Tell me a story")).routing.cache.hit


async def test_an_interrupted_stream_is_not_stored(cached: Cached) -> None:
    for name in cached.sims:
        await cached.sims.set_profile(name, cut_stream_rate=1.0, answer_tokens=40)
    with pytest.raises(grpc.aio.AioRpcError):
        await cached.stream("k_acme")
    for name in cached.sims:
        await cached.sims.set_profile(name, cut_stream_rate=0.0)
    assert not (await cached.route("k_acme", "Tell me a story")).HasField("cache")


async def test_identical_concurrent_misses_make_one_upstream_request(cached: Cached) -> None:
    # Slow enough upstream that every call arrives while the first is still in flight.
    for name in cached.sims:
        await cached.sims.set_profile(name, latency_ms_p50=1500, latency_ms_p99=1500)
    coalesced_before = cache_metrics.COALESCED._value.get()
    calls = 10
    answers = await asyncio.gather(*(cached.complete("k_acme", "Coalesce me") for _ in range(calls)))
    assert await cached.upstream_requests() == 1
    assert len({a.message.content for a in answers}) == 1
    billed = [a for a in answers if not a.routing.HasField("cache")]
    assert len(billed) == 1  # the one that went upstream; the others waited for it, cost 0
    assert all(nanos(a.cost) == 0 and a.routing.cache.hit for a in answers if a is not billed[0])
    assert cache_metrics.COALESCED._value.get() - coalesced_before == calls - 1

    # Coalescing is per tenant too: the other customer's identical call goes upstream itself.
    await cached.complete("k_globex", "Coalesce me")
    assert await cached.upstream_requests() == 2


async def test_calls_still_succeed_when_redis_stops_mid_load(
    sims: Sims, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = EmbeddedRedis(log_path=tmp_path_factory.mktemp("cache-redis") / "redis.log")
    await server.start()
    running = await start_cached(sims, tmp_path, server.url, store_timeout_s=0.2)
    errors_before = sum(cache_metrics.ERRORS.labels(op)._value.get() for op in ("get", "set"))
    try:
        await running.complete("k_acme", "steady")
        assert (await running.complete("k_acme", "steady")).routing.cache.hit

        async def load(n: int) -> list[pb.CompleteResponse]:
            return [await running.complete("k_acme", f"load {n} {i}") for i in range(5)]

        loaders = [asyncio.create_task(load(n)) for n in range(4)]
        await asyncio.sleep(0.05)
        await server.stop()
        answers = [a for batch in await asyncio.gather(*loaders) for a in batch]
        assert len(answers) == 20 and all(a.message.content for a in answers)
        after = [await running.complete("k_acme", "steady") for _ in range(3)]  # misses now
        assert all(not a.routing.HasField("cache") and a.message.content for a in after)
        errors = sum(cache_metrics.ERRORS.labels(op)._value.get() for op in ("get", "set"))
        assert errors - errors_before >= 3
    finally:
        await running.channel.close()
        await running.app.stop(grace_s=1)
        await server.stop()


async def test_no_secret_in_any_key_or_value(cached: Cached, redis_server: str) -> None:
    await cached.complete("k_acme")
    await cached.complete("k_globex")
    await cached.stream("k_acme")
    client = aioredis.Redis.from_url(redis_server)
    try:
        keys = [k async for k in client.scan_iter(match=f"{cached.prefix}*")]
        assert len(keys) == 3  # one entry per tenant and request
        values = [await client.get(k) for k in keys]
    finally:
        await client.aclose()
    secrets = [*cached.secrets.values(), *(f"secret-key-{name}" for name in cached.sims)]
    texts = [k.decode() for k in keys] + [zlib.decompress(v[1:]).decode() for v in values if v]
    assert len(texts) == 6
    for text in texts:
        for secret in secrets:
            assert secret not in text
        for tenant in ("acme", "globex", "k_acme", "k_globex", "search"):
            assert tenant not in text


async def test_a_hit_publishes_a_completion_event_with_what_it_saved(
    sims: Sims, redis_server: str, kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = f"test.router.events.{uuid.uuid4().hex[:10]}"
    events = events_config(kafka_broker, topic, tmp_path / "spool")
    running = await start_cached(sims, tmp_path, redis_server, events=events)
    try:
        first = await running.complete("k_acme")
        again = await running.complete("k_acme")
        assert again.routing.cache.hit
    finally:
        await running.channel.close()
        await running.app.stop(grace_s=2)  # flushes the publisher
    # miss: decision, attempt, completion; hit: decision, completion (nothing went upstream)
    records = await read_events(kafka_broker.bootstrap, topic, expected=5)
    completions = [e for _, e, _, _ in records if e.WhichOneof("body") == "completion"]
    assert len(records) == 5 and len(completions) == 2
    by_hit = {c.completion.cache_hit: c for c in completions}
    billed, hit = by_hit[False], by_hit[True]
    assert billed.completion.cost_nanos_usd == nanos(first.cost) > 0
    assert billed.completion.cost_saved_nanos_usd == 0
    assert hit.completion.cost_nanos_usd == 0 and hit.completion.attempt_count == 0
    assert hit.completion.cost_saved_nanos_usd == nanos(first.cost)
    assert hit.completion.usage == billed.completion.usage  # the usage it would have cost
    assert (hit.customer, hit.api_key_id) == ("acme", "k_acme")


async def test_the_openai_door_is_answered_from_the_same_cache(
    sims: Sims, redis_server: str, tmp_path: Path
) -> None:
    running = await start_cached(sims, tmp_path, redis_server, openai_http=True)
    body = {"model": "m1", "temperature": 0, "messages": [{"role": "user", "content": "Door?"}]}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.app.openai_port}") as client:
            headers = {"authorization": f"Bearer {running.secrets['k_acme']}"}
            answers = [
                (await client.post("/v1/chat/completions", json=body, headers=headers, timeout=30))
                for _ in range(2)
            ]
            other = await client.post(
                "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {running.secrets['k_globex']}"},
                timeout=30,
            )
        assert [a.status_code for a in answers] == [200, 200] and other.status_code == 200
        texts = [a.json()["choices"][0]["message"]["content"] for a in answers]
        assert texts[0] and texts[0] == texts[1]
        assert await running.upstream_requests() == 2  # acme once (then its hit), globex once
    finally:
        await running.channel.close()
        await running.app.stop(grace_s=1)
