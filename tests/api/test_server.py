"""create_server over real gRPC on loopback: server reflection follows `server.reflection`, and
health answers either way."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.api.server import create_server, mark_serving
from router_service.config_schema import ServerConfig


@pytest.fixture
async def channel(request: pytest.FixtureRequest) -> AsyncIterator[grpc.aio.Channel]:
    config = ServerConfig(listen="127.0.0.1:0", reflection=request.param)
    server, port, health_servicer = create_server(pb_grpc.RouterServiceServicer(), config)
    await server.start()
    await mark_serving(health_servicer)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(None)


async def _list_services(channel: grpc.aio.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [answer] = [a async for a in stub.ServerReflectionInfo(iter([request]), timeout=10)]
    return sorted(service.name for service in answer.list_services_response.service)


def test_reflection_is_on_by_default_for_dev() -> None:
    assert ServerConfig().reflection is True


@pytest.mark.parametrize("channel", [True], indirect=True)
async def test_reflection_on_lists_the_services(channel: grpc.aio.Channel) -> None:
    assert await _list_services(channel) == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "router.v1.RouterService",
    ]


@pytest.mark.parametrize("channel", [False], indirect=True)
async def test_reflection_off_is_unimplemented_and_health_still_answers(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _list_services(channel)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
