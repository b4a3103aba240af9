"""Streams and the response cache over real gRPC (the router, simulators counting upstream
requests, Redis as the shared store: the setup of test_cache_grpc.py): identical concurrent
Streams of one tenant coalesced into one upstream request, every caller getting the same message
sequence; another tenant's identical Stream not coalesced; and a stream cut mid-way neither
stored nor handed to the Streams that were waiting for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from router_contract._gen.router.v1 import router_pb2 as pb
from router_service.cache import metrics as cache_metrics
from tests.integration.conftest import Sims, chat
from tests.integration.test_cache_grpc import DETERMINISTIC, Cached, cache_router, nanos

# Slow to the first token (every call arrives while the first still waits for it), then several
# deltas: the followers must get the very deltas the one live stream relayed.
SLOW_FIRST_TOKEN = {"latency_ms_p50": 500, "latency_ms_p99": 500, "token_interval_ms": 2, "answer_tokens": 12}


@pytest.fixture
async def cached(sims: Sims, redis_server: str, tmp_path: Path) -> AsyncIterator[Cached]:
    async with cache_router(sims, tmp_path, redis_server) as running:
        yield running


async def _set_all(cached: Cached, **profile: float) -> None:
    for name in cached.sims:
        await cached.sims.set_profile(name, **profile)


def _answer_part(messages: list[pb.StreamResponse]) -> tuple[list[str | None], list[pb.Delta], pb.Usage, int]:
    """What every caller of one answer must see alike: the message kinds, the deltas, the usage
    and the finish reason (routing, cost and cache status are each caller's own)."""
    end = messages[-1].end
    return (
        [m.WhichOneof("event") for m in messages],
        [m.delta for m in messages[1:-1]],
        end.usage,
        end.finish_reason,
    )


async def test_identical_concurrent_streams_of_a_tenant_make_one_upstream_request(cached: Cached) -> None:
    await _set_all(cached, **SLOW_FIRST_TOKEN)
    coalesced_before = cache_metrics.COALESCED._value.get()
    calls, question = 8, "Coalesce my stream"
    *acme, globex = await asyncio.gather(
        *(cached.stream("k_acme", question) for _ in range(calls)), cached.stream("k_globex", question)
    )
    assert await cached.upstream_requests() == 2  # one per tenant: the other customer's went itself

    live = [s for s in acme if not s[0].routing.HasField("cache")]
    assert len(live) == 1  # the one that went upstream; the others followed it
    leader = live[0]
    kinds, deltas, usage, finish = _answer_part(leader)
    assert kinds[0] == "routing" and kinds[-1] == "end" and len(deltas) > 1
    for follower in (s for s in acme if s is not leader):
        assert _answer_part(follower) == (kinds, deltas, usage, finish)
        start, end = follower[0].routing, follower[-1].end
        assert start.cache.hit and end.routing.cache.hit
        assert nanos(end.cost) == 0 and len(end.routing.attempts) == 0
        assert nanos(end.routing.cache.saved_cost) == nanos(leader[-1].end.cost) > 0
        assert (start.provider, start.model) == (leader[0].routing.provider, leader[0].routing.model)
    assert cache_metrics.COALESCED._value.get() - coalesced_before == calls - 1

    assert not globex[0].routing.HasField("cache") and nanos(globex[-1].end.cost) > 0
    assert "".join(d.text for d in _answer_part(globex)[1]) == "".join(d.text for d in deltas)

    # Stored by the leader: the next Stream is a hit from the store, the same text in one delta.
    replayed = await cached.stream("k_acme", question)
    assert replayed[0].routing.cache.hit and await cached.upstream_requests() == 2
    assert [m.delta.text for m in replayed[1:-1]] == ["".join(d.text for d in deltas)]


async def _stream_until_error(
    cached: Cached, question: str
) -> tuple[list[pb.StreamResponse], grpc.StatusCode]:
    received: list[pb.StreamResponse] = []
    call = cached.stub.Stream(
        pb.StreamRequest(chat=chat(question, options=DETERMINISTIC)),
        metadata=cached.auth("k_acme"),
        timeout=30,
    )
    try:
        async for message in call:
            received.append(message)
    except grpc.aio.AioRpcError as exc:
        return received, exc.code()
    raise AssertionError(f"the stream ended cleanly after {len(received)} messages")


async def test_a_stream_cut_mid_way_is_not_stored_nor_handed_to_its_followers(cached: Cached) -> None:
    await _set_all(cached, **{**SLOW_FIRST_TOKEN, "cut_stream_rate": 1.0, "answer_tokens": 40})
    calls, question = 4, "Cut me short"
    results = await asyncio.gather(*(_stream_until_error(cached, question) for _ in range(calls)))
    for received, code in results:
        # Cut after the first tokens were relayed: too late to fall back, so the caller sees it.
        assert [m.WhichOneof("event") for m in received][:2] == ["routing", "delta"]
        assert "end" not in {m.WhichOneof("event") for m in received}
        assert code is not grpc.StatusCode.OK
    # The followers got no partial answer: each made its own call once the leader's was cut.
    assert await cached.upstream_requests() == calls

    await _set_all(cached, cut_stream_rate=0.0, latency_ms_p50=0, latency_ms_p99=0)
    assert not (await cached.route("k_acme", question)).HasField("cache")
    fresh = await cached.stream("k_acme", question)
    assert not fresh[0].routing.HasField("cache") and fresh[-1].WhichOneof("event") == "end"
    assert await cached.upstream_requests() == calls + 1
