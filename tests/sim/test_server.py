"""The sim as a real HTTP server on a free port, driven with httpx like an upstream client would."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from router_service.sim.presets import preset_config
from router_service.sim.profile import SimConfig, SimProfile
from router_service.sim.server import SimServer, run_sim

CONFIG = SimConfig(
    default=SimProfile(cached_prompt_fraction=0.5, quality={"code": 0.9}),
    models={
        "failing": SimProfile(error_rate=1.0),
        "limited": SimProfile(rate_limit_rate=1.0, retry_after_s=2.0),
        "hanging": SimProfile(hang_rate=1.0),
        "cut": SimProfile(cut_stream_rate=1.0, answer_tokens=12),
        "garbled": SimProfile(malformed_rate=1.0),
        "tiny-context": SimProfile(context_window=5),
        "ticking": SimProfile(token_interval_ms=1.0, answer_tokens=5),
        "slow-stream": SimProfile(token_interval_ms=50.0, answer_tokens=100),
    },
    seed=1,
)
PROMPT = "Explain routing in one line, please"


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(CONFIG) as server:
        yield server


@pytest.fixture
async def client(sim: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=5.0) as c:
        yield c


def _body(model: str = "m", content: str = PROMPT, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


async def _stream_events(client: httpx.AsyncClient, body: dict[str, Any]) -> list[str]:
    """The `data:` payloads of an SSE response, in order."""
    async with client.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = (await response.aread()).decode()
    assert text.endswith("\n\n")
    return [event.removeprefix("data: ") for event in text.split("\n\n") if event]


async def _stats(sim: SimServer) -> dict[str, Any]:
    async with httpx.AsyncClient() as c:
        response = await c.get(sim.url.removesuffix("/v1") + "/admin/stats")
    data: dict[str, Any] = response.json()
    return data


async def _admin_profile(sim: SimServer, payload: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.post(sim.url.removesuffix("/v1") + "/admin/profile", json=payload)


async def test_unary_answer_has_openai_shape_and_usage(client: httpx.AsyncClient) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}]
    response = await client.post("/chat/completions", json={"model": "m", "messages": messages})
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "m"
    assert data["id"].startswith("chatcmpl-")
    (choice,) = data["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    content = choice["message"]["content"]
    assert content.startswith(f"Simulated answer from m to: {PROMPT}")
    usage = data["usage"]
    prompt_tokens = math.ceil(len("be brief" + PROMPT) / 4)
    assert usage["prompt_tokens"] == prompt_tokens
    assert usage["completion_tokens"] == len(content.split()) == 16
    assert usage["total_tokens"] == prompt_tokens + 16
    assert usage["prompt_tokens_details"]["cached_tokens"] == prompt_tokens // 2
    assert response.headers["x-sim-task"] == "chat"
    assert float(response.headers["x-sim-quality"]) == 0.7


@pytest.mark.parametrize(
    ("headers", "content"), [({"x-sim-task": "code"}, PROMPT), ({}, "task:code write a parser")]
)
async def test_quality_header_follows_the_task(
    client: httpx.AsyncClient, headers: dict[str, str], content: str
) -> None:
    response = await client.post("/chat/completions", json=_body(content=content), headers=headers)
    assert response.headers["x-sim-task"] == "code"
    assert float(response.headers["x-sim-quality"]) == 0.9


@pytest.mark.parametrize("model", ["m", "ticking"])
async def test_stream_is_openai_chunks_ending_with_done(client: httpx.AsyncClient, model: str) -> None:
    unary = (await client.post("/chat/completions", json=_body(model))).json()
    events = await _stream_events(client, _body(model, stream=True, stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == model for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    *with_choices, usage_chunk = chunks
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == unary["usage"]
    assert with_choices[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in with_choices)
    assert text == unary["choices"][0]["message"]["content"]
    assert len(with_choices) >= 4  # role, several content deltas, finish


async def test_stream_without_include_usage_has_no_usage_chunk(client: httpx.AsyncClient) -> None:
    events = await _stream_events(client, _body(stream=True))
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["choices"] and "usage" not in c for c in chunks)


async def test_rate_limited_answers_429_with_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=_body("limited"))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


async def test_error_answers_500_with_openai_error_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=_body("failing", stream=True))
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert set(error) == {"message", "type", "param", "code"}


async def test_hang_ends_when_the_client_gives_up(sim: SimServer) -> None:
    async with httpx.AsyncClient(base_url=sim.url, timeout=0.2) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.post("/chat/completions", json=_body("hanging"))
    counters = await _wait_for_disconnect(sim, "hanging")
    assert counters["disconnects"] == 1
    assert counters["in_flight"] == 0
    assert counters["outcomes"]["hang"] == 1
    assert counters["completed"] == 0


async def _wait_for_disconnect(sim: SimServer, model: str) -> dict[str, Any]:
    for _ in range(100):
        counters: dict[str, Any] = (await _stats(sim))["models"][model]
        if counters["disconnects"] >= 1:
            break
        await asyncio.sleep(0.02)
    return counters


async def test_client_leaving_mid_stream_is_counted(sim: SimServer, client: httpx.AsyncClient) -> None:
    async with client.stream("POST", "/chat/completions", json=_body("slow-stream", stream=True)) as response:
        async for _ in response.aiter_bytes():
            break  # read the first chunk, then hang up
    counters = await _wait_for_disconnect(sim, "slow-stream")
    assert counters["disconnects"] == 1
    assert counters["in_flight"] == 0
    assert counters["completed"] == 0


async def test_stop_does_not_wait_for_hanging_requests() -> None:
    server = SimServer(SimConfig(default=SimProfile(hang_rate=1.0)))
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as c:
        pending = asyncio.create_task(c.post("/chat/completions", json=_body()))
        for _ in range(200):
            if server.stats.snapshot()["total"]["in_flight"]:
                break
            await asyncio.sleep(0.01)
        await asyncio.wait_for(server.stop(), timeout=1.0)
        with pytest.raises(httpx.RemoteProtocolError):
            await pending


@pytest.mark.parametrize("include_usage", [False, True])
async def test_cut_stream_stops_without_done(client: httpx.AsyncClient, include_usage: bool) -> None:
    received = b""
    body = _body("cut", stream=True, stream_options={"include_usage": include_usage})
    with pytest.raises(httpx.RemoteProtocolError):
        async with client.stream("POST", "/chat/completions", json=body) as response:
            async for part in response.aiter_bytes():
                received += part
    events = [e.removeprefix("data: ") for e in received.decode().split("\n\n") if e]
    assert events and "[DONE]" not in events
    chunks = [json.loads(e) for e in events]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


async def test_cut_unary_body_is_a_short_read(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/chat/completions", json=_body("cut"))


async def test_malformed_bodies_do_not_parse(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", json=_body("garbled"))
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    events = await _stream_events(client, _body("garbled", stream=True))
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[0])


async def test_admin_profile_switches_behaviour_live(sim: SimServer, client: httpx.AsyncClient) -> None:
    assert (await client.post("/chat/completions", json=_body("m"))).status_code == 200
    switched = await _admin_profile(sim, {"model": "m", "profile": {"error_rate": 1.0}})
    assert switched.status_code == 200 and switched.json()["profile"]["error_rate"] == 1.0
    assert (await client.post("/chat/completions", json=_body("m"))).status_code == 500
    assert (await client.post("/chat/completions", json=_body("other"))).status_code == 200

    # Over "garbled" (malformed_rate 1) a bare rate_limit_rate 1 would sum past 1 and be refused
    # as a whole; a preset restarts every profile from a clean base.
    everything = {"model": "*", "profile": {"preset": "instant", "rate_limit_rate": 1.0}}
    assert (await _admin_profile(sim, everything)).status_code == 200
    assert (await client.post("/chat/completions", json=_body("other"))).status_code == 429
    assert (await client.post("/chat/completions", json=_body("garbled"))).status_code == 429

    await _admin_profile(sim, {"model": "*", "reset": True})
    assert (await client.post("/chat/completions", json=_body("m"))).status_code == 200
    assert (await client.post("/chat/completions", json=_body("failing"))).status_code == 500


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"model": "m", "profile": {"error_rate": 3}}, "error_rate"),
        ({"model": "m", "profile": {"nope": 1}}, "nope"),
        ({"model": "*", "profile": {"error_rate": 0.6, "hang_rate": 0.6}}, "fault rates sum"),
        ({"profile": {}}, "model"),
        ({"model": "m"}, "'profile'"),
    ],
)
async def test_admin_profile_rejects_bad_updates(
    sim: SimServer, payload: dict[str, Any], fragment: str
) -> None:
    response = await _admin_profile(sim, payload)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


async def test_stats_count_requests_per_model_and_reset(sim: SimServer, client: httpx.AsyncClient) -> None:
    await client.post("/chat/completions", json=_body("m"))
    await client.post("/chat/completions", json=_body("failing"))
    await client.post("/chat/completions", json={"model": "m"})
    stats = await _stats(sim)
    assert stats["models"]["m"]["outcomes"]["ok"] == 1
    assert stats["models"]["failing"]["outcomes"]["error"] == 1
    assert stats["total"]["requests"] == 2
    assert stats["invalid_requests"] == 1
    async with httpx.AsyncClient() as c:
        await c.post(sim.url.removesuffix("/v1") + "/admin/stats/reset")
    assert (await _stats(sim))["total"]["requests"] == 0


async def test_tool_call_answer_unary(client: httpx.AsyncClient) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    response = await client.post(
        "/chat/completions", json=_body(content="call:get_weather for Paris", tools=tools)
    )
    (choice,) = response.json()["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert set(json.loads(call["function"]["arguments"])) == {"city"}

    events = await _stream_events(
        client, _body(content="call:get_weather for Paris", tools=tools, stream=True)
    )
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0] for e in events[:-1]]
    head = deltas[0]["delta"]["tool_calls"][0]
    assert (head["id"], head["function"]["name"]) == (call["id"], "get_weather")
    fragments = [d["delta"]["tool_calls"][0]["function"]["arguments"] for d in deltas[1:-1]]
    assert len(fragments) >= 2
    assert "".join(fragments) == call["function"]["arguments"]
    assert deltas[-1]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("body", "param"),
    [({"model": "m"}, "messages"), ({"messages": [{"role": "user", "content": "x"}]}, "model")],
)
async def test_missing_fields_are_400_invalid_request(
    client: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    response = await client.post("/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}


async def test_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("model", "chars"),
    [("tiny-context", 100), ("m", 4 * 128_000 + 4)],  # the default window is 128,000 tokens
)
async def test_prompt_over_context_window_is_400(client: httpx.AsyncClient, model: str, chars: int) -> None:
    response = await client.post("/chat/completions", json=_body(model, content="x" * chars))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"


async def test_max_tokens_truncates_with_finish_length(client: httpx.AsyncClient) -> None:
    data = (await client.post("/chat/completions", json=_body(max_tokens=3))).json()
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3


async def test_models_and_healthz(sim: SimServer, client: httpx.AsyncClient) -> None:
    models = (await client.get("/models")).json()
    assert models["object"] == "list"
    assert {m["id"] for m in models["data"]} == set(CONFIG.models)
    health = await client.get(sim.url.removesuffix("/v1") + "/healthz")
    assert health.json() == {"status": "ok"}


async def test_server_lifecycle_is_start_once_stop_idempotent() -> None:
    server = SimServer(preset_config("instant"))
    with pytest.raises(RuntimeError):
        _ = server.url
    port = await server.start()
    assert server.url == f"http://127.0.0.1:{port}/v1"
    with pytest.raises(RuntimeError):
        await server.start()
    await server.stop()
    await server.stop()
    with pytest.raises(RuntimeError):
        await server.start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_run_sim_serves_until_cancelled() -> None:
    port = _free_port()
    task = asyncio.create_task(run_sim("127.0.0.1", port, preset_config("instant")))
    url = f"http://127.0.0.1:{port}/healthz"
    async with httpx.AsyncClient() as c:
        for _ in range(100):
            try:
                if (await c.get(url)).status_code == 200:
                    break
            except httpx.ConnectError:
                await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(httpx.ConnectError):
            await c.get(url)
