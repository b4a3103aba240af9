"""Builds the grpc.aio server: router service, health checking, reflection (unless configured
off), limits, keepalive."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from router_contract._gen.router.v1 import router_pb2
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.api.interceptors import RequestDecodeInterceptor
from router_service.api.tls import server_credentials
from router_service.config_schema import ServerConfig

SERVICE_NAME = router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name


def server_options(config: ServerConfig, reuse_port: bool) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", config.max_receive_message_bytes),
        ("grpc.max_send_message_length", config.max_send_message_bytes),
        ("grpc.keepalive_time_ms", int(config.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", int(config.min_client_ping_interval_s * 1000)),
        ("grpc.http2.max_pings_without_data", 0),
        # SO_REUSEPORT lets `--workers N` processes share one port; off otherwise so that a
        # second router started by mistake fails to bind instead of silently sharing traffic.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]


def create_server(
    servicer: pb_grpc.RouterServiceServicer,
    config: ServerConfig,
    *,
    listen: str | None = None,
    reuse_port: bool = False,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """The server, the port it bound (listen "host:0" picks a free one), and its health servicer.
    The request-decode guard is always installed, innermost, so that every method of every
    service (router, health, reflection) answers an undecodable body with INVALID_ARGUMENT."""
    server = grpc.aio.server(
        interceptors=[*interceptors, RequestDecodeInterceptor()],
        options=server_options(config, reuse_port),
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    pb_grpc.add_RouterServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if config.reflection:
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection((SERVICE_NAME, health_name, reflection.SERVICE_NAME), server)
    address = listen or config.listen
    if config.tls is None:
        port = server.add_insecure_port(address)
    else:
        tls = config.tls
        credentials = server_credentials(
            tls.cert_file, tls.key_file, tls.client_ca_file, tls.require_client_cert
        )
        port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot bind {listen or config.listen}")
    return server, port, health_servicer


async def mark_serving(health_servicer: health.aio.HealthServicer) -> None:
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
