"""The OpenAI-compatible HTTP door driven by the official `openai` Python SDK, over real HTTP,
against the real router and simulated providers (no mocks): unary, streaming, tools, JSON mode,
errors as the SDK raises them, the SDK's retries, cancellation, keys, and one request through
both doors giving the same decision, cost and events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import openai
import pytest

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.catalog import NANOS_PER_USD
from router_service.embedded.broker import EmbeddedBroker
from router_service.identity.model import Identity, Scope
from router_service.keystore.admin import create_key
from router_service.keystore.file_store import FileKeyStore
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict
from tests.integration.test_events import events_config, read_events

HELLO = [{"role": "user", "content": "Hello router"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def door_config(sims: Sims, **extra: Any) -> dict[str, Any]:
    config = router_config_dict(sims, **extra)
    config["server"]["openai_http"] = {"listen": "127.0.0.1:0"}
    return config


@pytest.fixture
async def door_router(sims: Sims) -> AsyncIterator[RouterApp]:
    app = RouterApp(parse_config(door_config(sims)))
    await app.start()
    yield app
    await app.stop(grace_s=1)


def sdk(app: RouterApp, *, key: str = "unused", max_retries: int = 0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{app.openai_port}/v1", api_key=key, max_retries=max_retries, timeout=20
    )


def price_nanos(prompt: int, completion: int) -> int:
    """The test catalog's price ($0.15 / $0.60 per Mtok), exactly, rounded up once."""
    scaled = prompt * 150_000_000 + completion * 600_000_000
    return -(-scaled // 1_000_000)


async def test_unary_answer_usage_routing_and_exact_cost(door_router: RouterApp) -> None:
    async with sdk(door_router) as client:
        raw = await client.chat.completions.with_raw_response.create(model="m2", messages=HELLO)
        completion = raw.parse()
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "m2"
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    routing = (completion.model_extra or {})["router"]
    cost = price_nanos(usage.prompt_tokens, usage.completion_tokens)
    assert routing["deployment"] == "sim-b/m2"
    assert routing["cost_nanos"] == cost
    assert routing["cost_usd"] == f"{cost // NANOS_PER_USD}.{cost % NANOS_PER_USD:09d}"
    assert [a["outcome"] for a in routing["attempts"]] == ["success"]
    assert raw.headers["x-router-deployment"] == "sim-b/m2"
    assert raw.headers["x-router-cost-nanos"] == str(cost)
    assert raw.headers["x-router-attempts"] == "1"
    assert completion.id == f"chatcmpl-{raw.headers['x-router-request-id']}"


async def test_model_names_alias_policy_and_routing_hints(door_router: RouterApp) -> None:
    async with sdk(door_router) as client:
        by_alias = await client.chat.completions.create(model="reverse", messages=HELLO)
        by_policy = await client.chat.completions.create(model="router/default", messages=HELLO)
        by_header = await client.chat.completions.create(
            model="router", messages=HELLO, extra_headers={"x-router-policy": "default"}
        )
        by_body = await client.chat.completions.create(
            model="router", messages=HELLO, extra_body={"router": {"denied_providers": ["sim-a"]}}
        )
    assert (by_alias.model_extra or {})["router"]["deployment"] == "sim-c/m3"  # the alias's first
    assert (by_policy.model_extra or {})["router"]["policy"] == "default"
    assert (by_header.model_extra or {})["router"]["policy"] == "default"
    assert (by_body.model_extra or {})["router"]["provider"] != "sim-a"


async def test_stream_with_usage_ends_with_done(door_router: RouterApp) -> None:
    async with sdk(door_router) as client:
        stream = await client.chat.completions.create(
            model="m1", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finishes = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishes] == ["stop"]
    routing = (finishes[0].model_extra or {})["router"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert routing["cost_nanos"] == price_nanos(last.usage.prompt_tokens, last.usage.completion_tokens)
    assert all(c.usage is None for c in chunks[:-1])


async def test_tools_unary_and_streamed(door_router: RouterApp) -> None:
    async with sdk(door_router) as client:
        completion = await client.chat.completions.create(
            model="m1",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
        )
        stream = await client.chat.completions.create(
            model="m1",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            stream=True,
        )
        deltas = [c.choices[0].delta for c in [chunk async for chunk in stream] if c.choices]
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather"]
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)
    streamed = "".join(
        (t.function.arguments or "") for d in deltas for t in d.tool_calls or [] if t.function is not None
    )
    assert json.loads(streamed) == json.loads(calls[0].function.arguments)

    # The call and its result go back as the next turn: assistant tool_calls, then a tool message.
    async with sdk(door_router) as client:
        follow_up = await client.chat.completions.create(
            model="m1",
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "tool_calls": [c.model_dump() for c in calls]},
                {"role": "tool", "tool_call_id": calls[0].id, "content": '{"celsius": 21}'},
            ],
            tools=[WEATHER_TOOL],
        )
    assert follow_up.choices[0].message.content


async def test_json_object_and_json_schema(door_router: RouterApp) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    async with sdk(door_router) as client:
        as_object = await client.chat.completions.create(
            model="m1", messages=HELLO, response_format={"type": "json_object"}
        )
        as_schema = await client.chat.completions.create(
            model="m1",
            messages=HELLO,
            response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}},
        )
    assert isinstance(json.loads(as_object.choices[0].message.content or ""), dict)
    assert isinstance(json.loads(as_schema.choices[0].message.content or "")["answer"], str)


async def test_invalid_fields_are_400_with_param_and_nothing_is_called(
    door_router: RouterApp, sims: Sims
) -> None:
    async with sdk(door_router, max_retries=2) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(model="m1", messages=HELLO, temperature=3.5)
        with pytest.raises(openai.BadRequestError) as tool_msg:
            await client.chat.completions.create(
                model="m1",
                messages=[{"role": "tool", "content": "x"}],
            )
        with pytest.raises(openai.BadRequestError) as n:
            await client.chat.completions.create(model="m1", messages=HELLO, n=2)
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert bad.value.status_code == 400
    assert bad.value.param == "temperature"
    assert bad.value.code == "invalid_request"
    assert "temperature: must be in [0, 2]" in bad.value.message
    assert tool_msg.value.param == "messages[0].tool_call_id"
    assert n.value.param == "n"
    assert unknown.value.param == "model"
    assert unknown.value.code == "model_not_found"
    for name in sims:
        assert (await sims.stats(name))["requests"] == 0


async def test_sdk_retries_503_when_every_upstream_fails(door_router: RouterApp, sims: Sims) -> None:
    """Every deployment answers 429 (Retry-After 0.05 s): the router answers 503 with the shortest
    delay an upstream asked for, and the SDK retries twice; each try reached all three sims."""
    for name in sims:
        await sims.set_profile(name, rate_limit_rate=1.0, retry_after_s=0.05)
    async with sdk(door_router, max_retries=2) as client:
        with pytest.raises(openai.InternalServerError) as failed:
            await client.chat.completions.create(model="router", messages=HELLO)
    assert failed.value.status_code == 503
    assert failed.value.code == "all_attempts_failed"
    assert failed.value.response.headers["retry-after-ms"] == "50"
    assert [(await sims.stats(name))["requests"] for name in sims] == [3, 3, 3]


async def test_sdk_retry_succeeds_once_upstreams_recover(door_router: RouterApp, sims: Sims) -> None:
    """The first try fails (every sim rate-limited: 503 from the router); the sims recover when
    that answer reaches the SDK (a response hook, before the SDK waits and retries): the retry is
    answered, and the sims saw 3 + 1 requests."""
    for name in sims:
        await sims.set_profile(name, rate_limit_rate=1.0, retry_after_s=0.05)
    statuses: list[int] = []

    async def recover_after_first_failure(response: Any) -> None:
        statuses.append(response.status_code)
        if response.status_code == 503:
            for name in sims:
                await sims.set_profile(name, rate_limit_rate=0.0)

    http_client = openai.DefaultAsyncHttpxClient(event_hooks={"response": [recover_after_first_failure]})
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{door_router.openai_port}/v1",
        api_key="unused",
        max_retries=1,
        http_client=http_client,
    )
    async with client:
        completion = await client.chat.completions.create(model="router", messages=HELLO)
    assert completion.choices[0].message.content
    assert statuses == [503, 200]
    assert sum([(await sims.stats(name))["requests"] for name in sims]) == 4


async def test_stream_cut_after_first_chunk_raises_never_done(door_router: RouterApp, sims: Sims) -> None:
    for name in sims:
        await sims.set_profile(name, cut_stream_rate=1.0, answer_tokens=40)
    seen: list[str] = []
    async with sdk(door_router) as client:
        stream = await client.chat.completions.create(model="m1", messages=HELLO, stream=True)
        with pytest.raises(openai.APIError) as cut:
            async for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen)  # text arrived before the failure
    assert "failed mid-stream" in cut.value.message
    assert (cut.value.body or {})["code"] == "stream_interrupted"


async def wait_for_disconnect(sims: Sims, name: str) -> dict[str, Any]:
    """The sim's stats once it saw a client go away (the router noticing a caller's close and
    cancelling its upstream call takes a few loop turns; bounded, never a fixed sleep)."""
    for _ in range(200):
        stats = await sims.stats(name)
        if stats["disconnects"]:
            break
        await asyncio.sleep(0.05)
    return stats


async def test_closing_the_stream_cancels_the_upstream_call(door_router: RouterApp, sims: Sims) -> None:
    await sims.set_profile("sim-a", token_interval_ms=200, answer_tokens=200)
    async with sdk(door_router) as client:
        stream = await client.chat.completions.create(model="m1", messages=HELLO, stream=True)
        async for _ in stream:
            break
        await stream.close()
        stats = await wait_for_disconnect(sims, "sim-a")
    assert stats["disconnects"] == 1 and stats["completed"] == 0


@pytest.fixture
async def patient_router(sims: Sims) -> AsyncIterator[RouterApp]:
    """A door whose attempts may take two minutes: only the caller can cut one short."""
    app = RouterApp(parse_config(door_config(sims, attempt_timeout_s=120)))
    await app.start()
    yield app
    await app.stop(grace_s=1)


async def test_a_unary_caller_leaving_cancels_the_upstream_call(
    patient_router: RouterApp, sims: Sims
) -> None:
    """The SDK times out a slow unary call (no retries) long before the router would: the
    router's handler is cancelled and with it the upstream request, which the sim sees end
    unanswered."""
    await sims.set_profile("sim-a", latency_ms_p50=30_000, latency_ms_p99=30_000)
    async with sdk(patient_router) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(model="m1", messages=HELLO, timeout=1.0)
        stats = await wait_for_disconnect(sims, "sim-a")
    assert (stats["requests"], stats["disconnects"], stats["completed"]) == (1, 1, 0)


async def test_models_lists_what_the_key_may_use(door_router: RouterApp) -> None:
    async with sdk(door_router) as client:
        listed = {m.id: (m.model_extra or {})["router"]["kind"] async for m in client.models.list()}
        one = await client.models.retrieve("router/default")
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("nope")
    assert listed["m1"] == "model" and listed["sim-a/m1"] == "deployment"
    assert listed["reverse"] == "alias" and listed["router/default"] == "policy"
    assert one.id == "router/default"


async def test_body_size_limit_and_unknown_route(door_router: RouterApp) -> None:
    base = f"http://127.0.0.1:{door_router.openai_port}"
    async with httpx.AsyncClient() as client:
        big = await client.post(
            f"{base}/v1/chat/completions",
            json={"model": "m1", "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]},
        )
        missing = await client.get(f"{base}/v1/embeddings")
        not_json = await client.post(f"{base}/v1/chat/completions", content=b"{nope")
    assert big.status_code == 413 and big.json()["error"]["param"] == "body"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    assert not_json.status_code == 400 and not_json.json()["error"]["param"] == "body"


@pytest.fixture
async def keyed_router(sims: Sims, tmp_path: Path) -> AsyncIterator[tuple[RouterApp, dict[str, str]]]:
    keys_file = tmp_path / "keys.yaml"
    store = FileKeyStore(keys_file, poll_s=0)
    identities = {
        "full": Identity(key_id="k_full", team="t", customer="c"),
        "m1_only": Identity(key_id="k_m1", allowed_models=frozenset({"m1"})),
        "no_stream": Identity(key_id="k_ns", scopes=frozenset({Scope.COMPLETE, Scope.ROUTE})),
    }
    secrets = {name: (await create_key(store, identity))[1] for name, identity in identities.items()}
    config = door_config(sims)
    config["auth"] = {"mode": "required", "keys_file": str(keys_file)}
    app = RouterApp(parse_config(config))
    await app.start()
    yield app, secrets
    await app.stop(grace_s=1)


async def test_keys_and_scopes_as_grpc(keyed_router: tuple[RouterApp, dict[str, str]]) -> None:
    app, secrets = keyed_router
    async with sdk(app, key=secrets["full"]) as client:
        assert (await client.chat.completions.create(model="m1", messages=HELLO)).choices
    async with sdk(app, key="sk-not-a-key") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="m1", messages=HELLO)
    async with sdk(app, key=secrets["m1_only"]) as client:
        with pytest.raises(openai.PermissionDeniedError) as denied:
            await client.chat.completions.create(model="m2", messages=HELLO)
        listed = {m.id async for m in client.models.list()}
    async with sdk(app, key=secrets["no_stream"]) as client:
        with pytest.raises(openai.PermissionDeniedError) as no_stream:
            await client.chat.completions.create(model="m1", messages=HELLO, stream=True)
    assert denied.value.param == "model"
    assert "m2" not in listed and "m1" in listed
    assert "'stream' scope" in no_stream.value.message


@pytest.fixture
async def events_router(
    sims: Sims, kafka_broker: EmbeddedBroker, tmp_path: Path
) -> AsyncIterator[tuple[RouterApp, str]]:
    """A door router publishing its events to a topic of its own on the embedded broker."""
    topic = f"test.openai.door.{tmp_path.name[-12:]}"
    config = door_config(sims)
    config["events"] = events_config(kafka_broker, topic, tmp_path / "spool")
    app = RouterApp(parse_config(config))
    await app.start()
    yield app, topic
    await app.stop(grace_s=2)  # idempotent: a test may stop it first, to flush the events


async def assert_one_matching_set(
    bootstrap: str, topic: str, grpc_id: str, http_id: str, cost_nanos: int, *, stream: bool
) -> None:
    """Each request published one decision, attempt and completion, with the same policy, chosen
    deployment, fallbacks, usage and exact cost (the engine's observer publishes, not a door)."""
    by_request: dict[str, dict[str, Any]] = {}
    for _, event, _, _ in await read_events(bootstrap, topic, expected=2 * 3):
        kind = event.WhichOneof("body")
        bodies = by_request.setdefault(event.request_id, {})
        assert kind not in bodies, f"two {kind} events for {event.request_id}"
        bodies[kind] = getattr(event, kind)
    assert set(by_request) == {grpc_id, http_id}
    via_grpc, via_http = by_request[grpc_id], by_request[http_id]
    assert sorted(via_grpc) == sorted(via_http) == ["attempt", "completion", "decision"]
    for field in ("policy", "strategy", "chosen", "fallbacks"):
        assert getattr(via_http["decision"], field) == getattr(via_grpc["decision"], field), field
    completions = [via_grpc["completion"], via_http["completion"]]
    assert completions[0].cost_nanos_usd == completions[1].cost_nanos_usd == cost_nanos
    assert completions[0].usage == completions[1].usage
    assert [c.stream for c in completions] == [stream, stream]


async def test_same_request_through_both_doors(
    events_router: tuple[RouterApp, str], kafka_broker: EmbeddedBroker
) -> None:
    """One request through gRPC, the same through HTTP: the same decision, attempts, answer and
    cost, and one set of events each that agree."""
    app, topic = events_router
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        options = pb.GenerationOptions(temperature=0.5)
        via_grpc = await stub.Complete(pb.CompleteRequest(chat=chat(options=options)))
    async with sdk(app) as client:
        via_http = await client.chat.completions.create(model="router", messages=HELLO, temperature=0.5)
    await app.stop(grace_s=2)  # flushes the publisher
    routing = (via_http.model_extra or {})["router"]
    grpc_routing = via_grpc.routing
    assert routing["deployment"] == f"{grpc_routing.provider}/{grpc_routing.model}"
    assert (routing["policy"], routing["strategy"]) == (grpc_routing.policy, grpc_routing.strategy)
    assert len(routing["attempts"]) == len(grpc_routing.attempts)
    assert routing["cost_nanos"] == via_grpc.cost.units * NANOS_PER_USD + via_grpc.cost.nanos
    assert via_http.choices[0].message.content == via_grpc.message.content
    await assert_one_matching_set(
        kafka_broker.bootstrap,
        topic,
        grpc_routing.request_id,
        routing["request_id"],
        routing["cost_nanos"],
        stream=False,
    )


async def test_same_stream_through_both_doors(
    events_router: tuple[RouterApp, str], kafka_broker: EmbeddedBroker
) -> None:
    """The streamed twin: the same text, deployment and cost at the end, the same events."""
    app, topic = events_router
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        messages = [m async for m in stub.Stream(pb.StreamRequest(chat=chat()), timeout=20)]
    async with sdk(app) as client:
        stream = await client.chat.completions.create(model="router", messages=HELLO, stream=True)
        chunks = [chunk async for chunk in stream]
    await app.stop(grace_s=2)
    end = messages[-1].end
    grpc_text = "".join(m.delta.text for m in messages if m.WhichOneof("event") == "delta")
    http_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    routing = (finish.model_extra or {})["router"]
    assert http_text == grpc_text and http_text
    assert routing["deployment"] == f"{end.routing.provider}/{end.routing.model}"
    assert routing["cost_nanos"] == end.cost.units * NANOS_PER_USD + end.cost.nanos
    await assert_one_matching_set(
        kafka_broker.bootstrap,
        topic,
        end.routing.request_id,
        routing["request_id"],
        routing["cost_nanos"],
        stream=True,
    )
