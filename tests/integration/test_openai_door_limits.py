"""429 end to end through the OpenAI door: a real router whose limits (router_service/limits/,
in-process store; auth off, so the global level limits) allow one request at a time, the one slot
held by a stream this test keeps open, and the official SDKs (Python; Node through
clients/typescript/openai_door_check.mjs) calling meanwhile. Each sees 429 `rate_limited` with
Retry-After as it surfaces it, and with retries on waits Retry-After and tries again: answered
once the slot is free."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from prometheus_client import REGISTRY

from router_service.app import RouterApp
from router_service.settings import parse_config
from tests.integration.conftest import Sims
from tests.integration.test_openai_door import HELLO, door_config
from tests.integration.test_openai_door_node import CASE_TIMEOUT_S, CLIENT_DIR, SCRIPT, node_sdk

__all__ = ["node_sdk"]  # the fixture, imported for the tests below


@pytest.fixture
async def limited_router(sims: Sims) -> AsyncIterator[RouterApp]:
    config = door_config(sims, attempt_timeout_s=120)  # the held stream outlives the test
    config["limits"] = {"store": "memory", "rate_limits": [{"level": "global", "concurrent": 1}]}
    app = RouterApp(parse_config(config))
    await app.start()
    yield app
    await app.stop(grace_s=1)


def chat_in_flight() -> float:
    return REGISTRY.get_sample_value("llmrouter_http_in_flight", {"route": "chat_completions"}) or 0.0


class HeldSlot:
    """A slow stream through the door holding the limit's one slot until `free()`."""

    def __init__(self, app: RouterApp, stack: contextlib.AsyncExitStack) -> None:
        self._app = app
        self._stack = stack
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None

    async def hold(self, sims: Sims) -> None:
        await sims.set_profile("sim-a", token_interval_ms=100, answer_tokens=400)  # ~40 s of text
        http = await self._stack.enter_async_context(httpx.AsyncClient(timeout=30))
        url = f"http://127.0.0.1:{self._app.openai_port}/v1/chat/completions"
        request = http.stream("POST", url, json={"model": "m1", "messages": HELLO, "stream": True})
        self._response = await self._stack.enter_async_context(request)
        assert self._response.status_code == 200
        # The first event: admitted, the slot is taken. The iterator is kept: dropped, it would be
        # finalized, and its closing would close the stream.
        self._lines = self._response.aiter_lines()
        await anext(self._lines)
        assert chat_in_flight() == 1

    async def free(self) -> None:
        """Close the stream (the router cancels it and releases the slot) and wait until its
        handler has ended."""
        assert self._response is not None
        await self._response.aclose()
        for _ in range(400):
            if chat_in_flight() == 0:
                return
            await asyncio.sleep(0.025)
        raise AssertionError("the held stream's handler did not end")


async def test_python_sdk_sees_429_and_retries_after_retry_after(
    limited_router: RouterApp, sims: Sims
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        slot = HeldSlot(limited_router, stack)
        await slot.hold(sims)
        base_url = f"http://127.0.0.1:{limited_router.openai_port}/v1"
        async with openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0) as client:
            with pytest.raises(openai.RateLimitError) as refused:
                await client.chat.completions.create(model="router", messages=HELLO)
        statuses: list[int] = []

        async def free_after_first_429(response: httpx.Response) -> None:
            statuses.append(response.status_code)
            if response.status_code == 429 and len(statuses) == 1:
                await slot.free()  # before the SDK sleeps its Retry-After and retries

        http_client = openai.DefaultAsyncHttpxClient(event_hooks={"response": [free_after_first_429]})
        async with openai.AsyncOpenAI(
            base_url=base_url, api_key="unused", max_retries=1, http_client=http_client
        ) as client:
            completion = await client.chat.completions.create(model="router", messages=HELLO)
    assert refused.value.status_code == 429
    assert refused.value.code == "rate_limited" and refused.value.type == "rate_limit_error"
    headers = refused.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("1", "1000")
    assert "x-should-retry" not in headers
    assert "concurrent" in refused.value.message
    assert statuses == [429, 200] and completion.choices[0].message.content


async def test_node_sdk_sees_429_and_retries_after_retry_after(
    node_sdk: str, limited_router: RouterApp, sims: Sims
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        slot = HeldSlot(limited_router, stack)
        await slot.hold(sims)
        proc = await asyncio.create_subprocess_exec(
            node_sdk,
            str(SCRIPT),
            "rateLimited",
            cwd=CLIENT_DIR,
            env={**os.environ, "ROUTER_BASE_URL": f"http://127.0.0.1:{limited_router.openai_port}/v1"},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stack.push_async_callback(_reap, proc)
        assert proc.stdout is not None and proc.stdin is not None
        event = await asyncio.wait_for(proc.stdout.readline(), CASE_TIMEOUT_S)
        assert json.loads(event) == {"event": "429"}, event
        await slot.free()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        out, err = await asyncio.wait_for(proc.communicate(), CASE_TIMEOUT_S)
        assert proc.returncode == 0, err.decode()
    got = json.loads(out)
    refused = got["refused"]
    assert (refused["class"], refused["status"]) == ("RateLimitError", 429)
    assert (refused["code"], refused["type"]) == ("rate_limited", "rate_limit_error")
    assert refused["retryAfter"] == "1"
    assert got["statuses"] == [429, 200] and got["content"]


async def _reap(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
