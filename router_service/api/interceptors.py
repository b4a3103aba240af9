"""Server interceptor: per-RPC metrics (count by status code, duration, in-flight).

It wraps the handler's behaviour instead of the continuation so it sees the final status code,
including codes set by `context.abort` and cancellations.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter

from router_service.telemetry import metrics


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        # Wrapped handlers per method path, built once: grpc calls intercept_service per RPC.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        cached = self._wrapped.get(details.method)
        if cached is not None:
            return cached
        handler = await continuation(details)
        if handler is None:
            return None
        wrapped = self._wrap(handler, details.method.rsplit("/", 1)[-1])
        self._wrapped[details.method] = wrapped
        return wrapped

    @staticmethod
    def _wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
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


@functools.cache
def _requests(method: str, code: str) -> Counter:
    """Labelled child per (method, code): both sets are small and fixed."""
    return metrics.RPC_REQUESTS.labels(method, code)


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
            _requests(method, _final_code(context, error)).inc()

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
            _requests(method, _final_code(context, error)).inc()

    return wrapper
