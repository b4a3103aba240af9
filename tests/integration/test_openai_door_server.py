"""The OpenAI door as an HTTP server, over real sockets against the real router: HTTP/1.1
keep-alive (calls share one connection), and the graceful stop it shares with gRPC (both stop
taking new calls, the streams in flight on either door finish, then the router stops)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import aiohttp
import grpc
import httpx
import pytest

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from tests.integration.conftest import Sims, chat
from tests.integration.test_openai_door import HELLO, door_router, wait_for_disconnect

__all__ = ["door_router"]  # the fixture, imported for the tests below


async def test_calls_share_one_keep_alive_connection(door_router: RouterApp) -> None:
    created: list[object] = []

    async def on_connection(_: aiohttp.ClientSession, __: SimpleNamespace, params: object) -> None:
        created.append(params)

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_connection)
    base = f"http://127.0.0.1:{door_router.openai_port}/v1"
    body = {"model": "m1", "messages": HELLO}
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        for _ in range(3):
            async with session.post(f"{base}/chat/completions", json=body) as response:
                assert response.status == 200 and (await response.json())["choices"]
                assert response.headers.get("connection", "").lower() != "close"
        async with session.get(f"{base}/models") as response:
            assert response.status == 200
    assert len(created) == 1


async def _refuses_new_connections(port: int) -> bool:
    """Whether a new TCP connection to `port` is refused (polled: the stop closes the listening
    socket a few loop turns after it began)."""
    for _ in range(400):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.01)
    return False


async def test_stop_drains_streams_on_both_doors_and_refuses_new_calls(
    door_router: RouterApp, sims: Sims
) -> None:
    await sims.set_profile("sim-a", token_interval_ms=50, answer_tokens=40)  # ~2 s each
    url = f"http://127.0.0.1:{door_router.openai_port}/v1/chat/completions"
    body = {"model": "m1", "messages": HELLO, "stream": True}
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("POST", url, json=body) as response,
        grpc.aio.insecure_channel(f"127.0.0.1:{door_router.port}") as channel,
    ):
        lines = response.aiter_lines()
        first = await anext(lines)
        assert json.loads(first.removeprefix("data: "))["choices"][0]["delta"]["role"] == "assistant"
        call = pb_grpc.RouterServiceStub(channel).Stream(pb.StreamRequest(chat=chat()), timeout=30)
        assert (await call.read()).WhichOneof("event") == "routing"

        stopping = asyncio.create_task(door_router.stop(grace_s=20))
        assert await _refuses_new_connections(door_router.openai_port)
        data = [line async for line in lines if line.startswith("data: ")]
        grpc_rest = []
        while (message := await call.read()) is not grpc.aio.EOF:
            grpc_rest.append(message)
        await asyncio.wait_for(stopping, 20)
    assert data[-1] == "data: [DONE]"
    finish = json.loads(data[-2].removeprefix("data: "))
    assert finish["choices"][0]["finish_reason"] == "stop"  # the whole answer, not a cut one
    assert grpc_rest[-1].WhichOneof("event") == "end"


async def test_a_zero_grace_cuts_the_streams_in_flight(door_router: RouterApp, sims: Sims) -> None:
    """No grace: the stream in flight is cut (no [DONE]) and its upstream call cancelled, rather
    than waited for (aiohttp's own shutdown reads a zero timeout as no limit)."""
    await sims.set_profile("sim-a", token_interval_ms=200, answer_tokens=200)  # ~40 s
    url = f"http://127.0.0.1:{door_router.openai_port}/v1/chat/completions"
    body = {"model": "m1", "messages": HELLO, "stream": True}
    async with httpx.AsyncClient(timeout=30) as http, http.stream("POST", url, json=body) as response:
        lines = response.aiter_lines()
        await anext(lines)
        await asyncio.wait_for(door_router.stop(grace_s=0), 20)  # a bound, should it wait for the stream
        with pytest.raises(httpx.RemoteProtocolError):
            async for _ in lines:
                pass
    stats = await wait_for_disconnect(sims, "sim-a")
    assert stats["disconnects"] == 1 and stats["completed"] == 0
