"""The OpenAI door's per-call metrics over real HTTP against the real router and simulated
providers: each call counted once by route, HTTP status and the router's final code (a stream
that fails after its 200 under its error's code; a caller that leaves as CANCELLED), timed, and
out of the in-flight gauge when it ends."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from prometheus_client import REGISTRY

from router_service.app import RouterApp
from tests.integration.conftest import Sims
from tests.integration.test_openai_door import HELLO, door_router, sdk

__all__ = ["door_router"]  # the fixture, imported for the tests below


def calls(route: str, status: int, code: str) -> float:
    labels = {"route": route, "status": str(status), "code": code}
    return REGISTRY.get_sample_value("llmrouter_http_requests_total", labels) or 0.0


def timed(route: str) -> float:
    return REGISTRY.get_sample_value("llmrouter_http_duration_seconds_count", {"route": route}) or 0.0


def in_flight(route: str) -> float:
    return REGISTRY.get_sample_value("llmrouter_http_in_flight", {"route": route}) or 0.0


async def test_answers_and_errors_counted_by_route_status_and_code(door_router: RouterApp) -> None:
    keys = [
        ("chat_completions", 200, "OK"),
        ("chat_completions", 400, "INVALID_ARGUMENT"),
        ("chat_completions", 404, "NOT_FOUND"),
        ("models", 200, "OK"),
        ("unknown", 404, "NOT_FOUND"),
    ]
    before = {key: calls(*key) for key in keys}
    timed_before = timed("chat_completions")
    async with sdk(door_router) as client:
        await client.chat.completions.create(model="m1", messages=HELLO)
        stream = await client.chat.completions.create(model="m1", messages=HELLO, stream=True)
        assert [chunk async for chunk in stream]
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="m1", messages=HELLO, temperature=3.5)
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="no-such-model", messages=HELLO)
        assert [m.id async for m in client.models.list()]
    async with httpx.AsyncClient() as http:
        missing = await http.get(f"http://127.0.0.1:{door_router.openai_port}/v1/embeddings")
    assert missing.status_code == 404
    added = {key: calls(*key) - before[key] for key in keys}
    assert added == {
        ("chat_completions", 200, "OK"): 2,  # the unary call and the stream
        ("chat_completions", 400, "INVALID_ARGUMENT"): 1,
        ("chat_completions", 404, "NOT_FOUND"): 1,
        ("models", 200, "OK"): 1,
        ("unknown", 404, "NOT_FOUND"): 1,
    }
    assert timed("chat_completions") - timed_before == 4
    assert in_flight("chat_completions") == 0


async def test_stream_failing_after_its_200_counts_its_error_code(door_router: RouterApp, sims: Sims) -> None:
    for name in sims:
        await sims.set_profile(name, cut_stream_rate=1.0, answer_tokens=40)
    ok, cut = calls("chat_completions", 200, "OK"), calls("chat_completions", 200, "UNAVAILABLE")
    async with sdk(door_router) as client:
        stream = await client.chat.completions.create(model="m1", messages=HELLO, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
    assert calls("chat_completions", 200, "UNAVAILABLE") - cut == 1
    assert calls("chat_completions", 200, "OK") == ok


async def test_caller_leaving_before_the_answer_counts_as_cancelled(
    door_router: RouterApp, sims: Sims
) -> None:
    """The caller gives up on a slow unary call: the handler is cancelled, counted once as 499
    CANCELLED, and leaves the in-flight gauge."""
    for name in sims:
        await sims.set_profile(name, latency_ms_p50=5000, latency_ms_p99=5000)
    before = calls("chat_completions", 499, "CANCELLED")
    url = f"http://127.0.0.1:{door_router.openai_port}/v1/chat/completions"
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.TimeoutException):
            await http.post(url, json={"model": "m1", "messages": HELLO}, timeout=0.5)
    for _ in range(200):  # the server notices the closed connection on its own schedule
        if calls("chat_completions", 499, "CANCELLED") > before:
            break
        await asyncio.sleep(0.025)
    assert calls("chat_completions", 499, "CANCELLED") - before == 1
    assert in_flight("chat_completions") == 0
