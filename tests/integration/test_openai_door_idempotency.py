"""Idempotent retries through the OpenAI door, over real HTTP with the official Python SDK against
the real router and simulated providers: a POST retried with the same Idempotency-Key (or
x-router-request-id) is answered from the request ledger, not run again; a changed request or
another key with the same id is refused; a retry after a failure runs again."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from router_service.app import RouterApp
from tests.integration.conftest import Sims
from tests.integration.test_openai_door import HELLO, door_router, keyed_router, sdk

__all__ = ["door_router", "keyed_router"]  # the fixtures, imported for the tests below


async def upstream_requests(sims: Sims) -> int:
    return sum([(await sims.stats(name))["requests"] for name in sims])


async def test_unary_retry_is_replayed_not_rerun(door_router: RouterApp, sims: Sims) -> None:
    key = {"Idempotency-Key": "order-42"}
    async with sdk(door_router) as client:
        first = await client.chat.completions.with_raw_response.create(
            model="m1", messages=HELLO, extra_headers=key
        )
        again = await client.chat.completions.with_raw_response.create(
            model="m1", messages=HELLO, extra_headers=key
        )
    assert first.http_response.content == again.http_response.content  # byte for byte
    assert first.parse().id == "chatcmpl-order-42"
    assert first.headers["x-router-request-id"] == again.headers["x-router-request-id"] == "order-42"
    assert "x-router-replayed" not in first.headers and again.headers["x-router-replayed"] == "true"
    assert again.headers["x-router-cost-nanos"] == first.headers["x-router-cost-nanos"]
    assert await upstream_requests(sims) == 1


async def test_stream_retry_is_replayed(door_router: RouterApp, sims: Sims) -> None:
    key = {"x-router-request-id": "stream-7"}
    async with sdk(door_router) as client:
        texts = []
        for _ in range(2):
            stream = await client.chat.completions.create(
                model="m1", messages=HELLO, stream=True, extra_headers=key
            )
            texts.append([chunk.model_dump_json() async for chunk in stream])
    assert texts[0] == texts[1] and len(texts[0]) > 2
    assert await upstream_requests(sims) == 1


async def test_concurrent_retry_waits_for_the_first_call(door_router: RouterApp, sims: Sims) -> None:
    """A retry sent while the first call still runs (an SDK timeout, say) waits for its answer."""
    await sims.set_profile("sim-a", latency_ms_p50=300, latency_ms_p99=300)
    url = f"http://127.0.0.1:{door_router.openai_port}/v1/chat/completions"
    request = {"model": "m1", "messages": HELLO}
    async with httpx.AsyncClient(timeout=20) as http:
        both = await asyncio.gather(
            *(http.post(url, json=request, headers={"idempotency-key": "slow-1"}) for _ in range(2))
        )
    assert [r.status_code for r in both] == [200, 200]
    assert both[0].content == both[1].content
    assert await upstream_requests(sims) == 1


async def test_the_same_id_with_another_request_is_refused(door_router: RouterApp, sims: Sims) -> None:
    key = {"Idempotency-Key": "reused-1"}
    async with sdk(door_router) as client:
        await client.chat.completions.create(model="m1", messages=HELLO, extra_headers=key)
        with pytest.raises(openai.BadRequestError) as reused:
            await client.chat.completions.create(
                model="m1", messages=HELLO, temperature=0.2, extra_headers=key
            )
        with pytest.raises(openai.BadRequestError) as bad_id:
            await client.chat.completions.create(
                model="m1", messages=HELLO, extra_headers={"Idempotency-Key": "not valid!"}
            )
    assert reused.value.code == "request_id_reused"
    assert bad_id.value.param == "idempotency-key"
    assert bad_id.value.response.headers["x-router-request-id"] != "not valid!"  # never echoed
    assert await upstream_requests(sims) == 1


async def test_another_key_cannot_take_over_an_id(
    keyed_router: tuple[RouterApp, dict[str, str]], sims: Sims
) -> None:
    app, secrets = keyed_router
    key = {"Idempotency-Key": "shared-id"}
    async with sdk(app, key=secrets["full"]) as client:
        await client.chat.completions.create(model="m1", messages=HELLO, extra_headers=key)
    async with sdk(app, key=secrets["m1_only"]) as client:
        with pytest.raises(openai.BadRequestError) as taken:
            await client.chat.completions.create(model="m1", messages=HELLO, extra_headers=key)
    assert taken.value.code == "request_id_reused"
    assert await upstream_requests(sims) == 1


async def test_a_retry_after_a_failure_runs_again(door_router: RouterApp, sims: Sims) -> None:
    """The first try fails (every upstream rate-limited: 503, nothing stored); the SDK's retry, with
    the same key, runs once the upstreams recover and is answered."""
    for name in sims:
        await sims.set_profile(name, rate_limit_rate=1.0, retry_after_s=0.05)
    statuses: list[int] = []

    async def recover_after_first_failure(response: httpx.Response) -> None:
        statuses.append(response.status_code)
        if response.status_code == 503:
            for name in sims:
                await sims.set_profile(name, rate_limit_rate=0.0)

    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{door_router.openai_port}/v1",
        api_key="unused",
        max_retries=1,
        http_client=openai.DefaultAsyncHttpxClient(event_hooks={"response": [recover_after_first_failure]}),
    )
    async with client:
        completion = await client.chat.completions.create(
            model="router", messages=HELLO, extra_headers={"Idempotency-Key": "flaky-1"}
        )
    assert completion.id == "chatcmpl-flaky-1" and completion.choices[0].message.content
    assert statuses == [503, 200]
    assert await upstream_requests(sims) == 3 + 1
