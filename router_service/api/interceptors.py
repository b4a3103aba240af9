"""Server interceptor: per-RPC metrics (count by status code, duration, in-flight).

It wraps the handler's behaviour instead of the continuation so it sees the final status code,
including codes set by `context.abort` and cancellations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from router_service.telemetry import metrics


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _server_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _final_code(context: grpc.aio.ServicerContext, exc: BaseException | None) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    code = context.code()
    if code is not None:
        return str(code.name) if isinstance(code, grpc.StatusCode) else str(code)
    return "UNKNOWN" if exc is not None else "OK"


def _unary(inner: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    in_flight = metrics.RPC_IN_FLIGHT.labels(method)
    duration = metrics.RPC_DURATION.labels(method)

    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        in_flight.inc()
        error: BaseException | None = None
        try:
            return await inner(request, context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            in_flight.dec()
            duration.observe(time.perf_counter() - started)
            metrics.RPC_REQUESTS.labels(method, _final_code(context, error)).inc()

    return wrapper


def _server_stream(
    inner: Callable[..., AsyncIterator[Any]], method: str
) -> Callable[..., AsyncIterator[Any]]:
    in_flight = metrics.RPC_IN_FLIGHT.labels(method)
    duration = metrics.RPC_DURATION.labels(method)

    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        started = time.perf_counter()
        in_flight.inc()
        error: BaseException | None = None
        try:
            async for message in inner(request, context):
                yield message
        except BaseException as exc:
            error = exc
            raise
        finally:
            in_flight.dec()
            duration.observe(time.perf_counter() - started)
            metrics.RPC_REQUESTS.labels(method, _final_code(context, error)).inc()

    return wrapper
