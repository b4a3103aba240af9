"""Traces end to end: a real router with tracing on exports over real OTLP/HTTP to a receiver in
the test, which decodes the spans with OpenTelemetry's own protobuf classes.

The caller's `traceparent` is the parent of the call's SERVER span; each upstream attempt is a
CLIENT span under it with the GenAI semantic conventions' attributes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from prometheus_client import CollectorRegistry

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# opentelemetry-instrumentation-grpc names the SERVER span after the full method path.
SERVER_SPAN = "/router.v1.RouterService/{}"
CALLER_SPAN_ID = "00f067aa0ba902b7"


@dataclass
class Received:
    spans: list[Span]
    resources: list[dict[str, Any]]

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind)


def attributes(span: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in span.attributes}


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, Received]]:
    """An OTLP/HTTP trace receiver (protobuf, as the exporter sends by default) on loopback."""
    received = Received([], [])

    async def export(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in message.resource_spans:
            received.resources.append(attributes(resource_spans.resource))
            for scope_spans in resource_spans.scope_spans:
                received.spans.extend(scope_spans.spans)
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", export)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1/traces", received
    await runner.cleanup()


async def _traced_router(sims: Sims, endpoint: str, **tracing: Any) -> RouterApp:
    config = router_config_dict(sims)
    config["tracing"] = {
        "enabled": True,
        "endpoint": endpoint,
        "service_name": "router-under-test",
        **tracing,
    }
    router = RouterApp(parse_config(config), registry=CollectorRegistry())
    await router.start()
    return router


def _metadata(sampled: bool = True) -> tuple[tuple[str, str], ...]:
    return (("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN_ID}-{'01' if sampled else '00'}"),)


async def test_a_fallback_is_one_server_span_with_a_client_span_per_attempt(
    sims: Sims, collector: tuple[str, Received]
) -> None:
    endpoint, received = collector
    await sims.set_profile("sim-a", error_rate=1.0)
    router = await _traced_router(sims, endpoint)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            pinned = chat(model=pb.ModelSelector(model="m1"))  # m1 fails, a fallback answers
            metadata = (*_metadata(), ("authorization", "Bearer caller-secret-token"))
            response = await stub.Complete(pb.CompleteRequest(chat=pinned), metadata=metadata)
    finally:
        await router.stop(grace_s=1)  # flushes the batch of spans

    assert received.resources[0]["service.name"] == "router-under-test"
    [server] = received.named(SERVER_SPAN.format("Complete"))
    assert server.kind == Span.SPAN_KIND_SERVER
    assert (server.trace_id.hex(), server.parent_span_id.hex()) == (TRACE_ID, CALLER_SPAN_ID)
    routing = response.routing
    assert attributes(server) | {
        "llmrouter.request_id": routing.request_id,
        "llmrouter.route.chosen": "sim-a/m1",
    } == attributes(server)

    [failed] = received.named("chat m1")
    answered = received.named(f"chat {routing.model}")
    assert len(answered) == 1 and routing.provider != "sim-a"
    for client in (failed, answered[0]):
        assert client.kind == Span.SPAN_KIND_CLIENT
        assert client.trace_id == server.trace_id and client.parent_span_id == server.span_id
        assert server.start_time_unix_nano <= client.start_time_unix_nano < client.end_time_unix_nano
        assert client.end_time_unix_nano <= server.end_time_unix_nano

    failure = attributes(failed)
    assert failed.status.code == Status.STATUS_CODE_ERROR
    first = routing.attempts[0]
    assert failure["error.type"] == pb.ErrorClass.Name(first.error_class).removeprefix("ERROR_CLASS_").lower()
    assert failure["http.response.status_code"] == first.http_status
    assert failure["gen_ai.operation.name"] == "chat"
    assert failure["gen_ai.provider.name"] == "sim-a"  # OpenAI-compatible on a custom host: our name
    assert failure["gen_ai.request.model"] == "m1"
    assert (failure["server.address"], failure["server.port"]) == ("127.0.0.1", sims["sim-a"].port)
    assert failure["llmrouter.attempt.index"] == 0 and failure["llmrouter.attempt.outcome"] == "error"
    assert "gen_ai.usage.input_tokens" not in failure

    success = attributes(answered[0])
    assert answered[0].status.code != Status.STATUS_CODE_ERROR and "error.type" not in success
    assert success["gen_ai.usage.input_tokens"] == response.usage.input_token_count
    assert success["gen_ai.usage.output_tokens"] == response.usage.output_token_count
    assert success["llmrouter.cost.nano_usd"] == response.cost.units * 10**9 + response.cost.nanos
    assert success["gen_ai.response.finish_reasons"] == ["stop"]
    assert success["gen_ai.request.stream"] is False
    assert success["llmrouter.attempt.index"] == 1
    assert success["llmrouter.request_id"] == routing.request_id

    # No secret reaches a span: not the providers' API keys (config), not the caller's token.
    exported = repr([(s.name, attributes(s), [attributes(e) for e in s.events]) for s in received.spans])
    assert "secret-key-" not in exported and "caller-secret-token" not in exported
    assert "secret" not in repr(received.resources)


async def test_a_stream_span_carries_time_to_first_chunk(sims: Sims, collector: tuple[str, Received]) -> None:
    endpoint, received = collector
    router = await _traced_router(sims, endpoint)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            chunks = [c async for c in stub.Stream(pb.StreamRequest(chat=chat()), metadata=_metadata())]
    finally:
        await router.stop(grace_s=1)

    assert chunks
    [server] = received.named(SERVER_SPAN.format("Stream"))
    [client] = [s for s in received.spans if s.kind == Span.SPAN_KIND_CLIENT]
    assert client.parent_span_id == server.span_id
    attrs = attributes(client)
    assert attrs["gen_ai.request.stream"] is True
    assert (
        0
        < attrs["gen_ai.response.time_to_first_chunk"]
        <= (client.end_time_unix_nano - client.start_time_unix_nano) / 1e9
    )
    assert attrs["gen_ai.usage.output_tokens"] > 0


async def test_unsampled_callers_and_probes_get_no_spans_and_errors_are_marked(
    sims: Sims, collector: tuple[str, Received]
) -> None:
    endpoint, received = collector
    for name in sims:
        await sims.set_profile(name, error_rate=1.0)
    router = await _traced_router(sims, endpoint)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
            stub = pb_grpc.RouterServiceStub(channel)
            await stub.Route(pb.RouteRequest(chat=chat()), metadata=_metadata(sampled=False))
            health = health_pb2_grpc.HealthStub(channel)  # probes: never traced, even when sampled
            await health.Check(health_pb2.HealthCheckRequest(), metadata=_metadata())
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=_metadata())
    finally:
        await router.stop(grace_s=1)

    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert received.named(SERVER_SPAN.format("Route")) == []  # the caller's decision holds
    assert received.named("/grpc.health.v1.Health/Check") == []
    [server] = received.named(SERVER_SPAN.format("Complete"))
    assert attributes(server)["llmrouter.error.reason"] == "ALL_ATTEMPTS_FAILED"
    assert server.status.code == Status.STATUS_CODE_ERROR
    clients = [s for s in received.spans if s.kind == Span.SPAN_KIND_CLIENT]
    assert len(clients) == 3 and all(c.status.code == Status.STATUS_CODE_ERROR for c in clients)


def test_tracing_is_off_by_default_and_then_loads_nothing(sims: Sims) -> None:
    assert not parse_config(router_config_dict(sims)).tracing.enabled
    # A router process that never enables tracing never imports the SDK, exporter or instrumentation.
    code = (
        "import sys, router_service.app, router_launcher.cli;"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter',"
        " 'opentelemetry.instrumentation'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
