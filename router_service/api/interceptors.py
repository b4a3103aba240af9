"""Server interceptors: per-RPC metrics (count by status code, duration, in-flight), and the
guard that answers a request body that does not decode with INVALID_ARGUMENT.

Both wrap the handler's behaviour instead of the continuation: the metrics see the final status
code (including codes set by `context.abort`, and cancellations), and the guard sees a failed
decode, which grpc would otherwise answer itself with UNKNOWN "Unexpected <class ...>".

A behaviour comes in two styles for each response shape: an async generator that yields the
responses, or a coroutine (that returns the one response, or writes them with `context.write`,
as the health service's Watch does). Each wrapper keeps the style of what it wraps.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status
from prometheus_client import Counter

from router_service.api.servicer import new_request_id
from router_service.api.status import to_rpc_error
from router_service.errors import UndecodableRequestError
from router_service.telemetry import metrics

log = logging.getLogger(__name__)

Behaviour = Callable[..., Any]
# (behaviour, request_streaming) -> wrapped behaviour
BehaviourWrapper = Callable[[Behaviour, bool], Behaviour]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]

_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def _rewrap(
    handler: grpc.RpcMethodHandler,
    wrap: BehaviourWrapper,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour (whichever of the four kinds it is) wrapped, and optionally
    another request deserializer; the response serializer is kept."""
    attribute, factory = _FACTORIES[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return factory(
        wrap(getattr(handler, attribute), bool(handler.request_streaming)),
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class _CachingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps each method's handler once: grpc calls intercept_service per RPC."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler | None] = {}

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        try:
            return self._wrapped[details.method]
        except KeyError:
            pass
        handler = await continuation(details)
        if handler is None:  # unknown method: grpc answers UNIMPLEMENTED; not cached (unbounded)
            return None
        wrapped = self._wrap(handler, details.method)
        self._wrapped[details.method] = wrapped
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, method_path: str) -> grpc.RpcMethodHandler:
        raise NotImplementedError


class MetricsInterceptor(_CachingInterceptor):
    def _wrap(self, handler: grpc.RpcMethodHandler, method_path: str) -> grpc.RpcMethodHandler:
        if handler.request_streaming:  # reflection's bidi stream: not a call worth a series
            return handler
        method = method_path.rsplit("/", 1)[-1]
        return _rewrap(handler, lambda behaviour, _: _measured(behaviour, method))


class RequestDecodeInterceptor(_CachingInterceptor):
    """Every method of every service answers a body that does not decode (truncated protobuf,
    invalid UTF-8 in a string field, nesting past protobuf's recursion limit) with
    INVALID_ARGUMENT / INVALID_REQUEST and ErrorInfo like every other error. The deserializer
    returns a marker instead of raising, and the wrapped behaviour aborts on it. Install it last
    (innermost): the interceptors outside it keep its deserializer and see its status."""

    def _wrap(self, handler: grpc.RpcMethodHandler, method_path: str) -> grpc.RpcMethodHandler:
        deserializer = handler.request_deserializer
        if deserializer is None:  # raw bytes in: nothing can fail to decode
            return handler
        return _rewrap(handler, _guarded, _tolerant(deserializer, _message_type(deserializer, method_path)))


class _Undecodable:
    """What the request deserializer returns for a body that does not decode."""

    __slots__ = ("message_type",)

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type


def _message_type(deserializer: Callable[[bytes], Any], method_path: str) -> str:
    """`router.v1.CompleteRequest` for `CompleteRequest.FromString`; the method when unknown."""
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", f"request of {method_path}"))


def _tolerant(deserializer: Callable[[bytes], Any], message_type: str) -> Callable[[bytes], Any]:
    def deserialize(body: bytes) -> Any:
        try:
            return deserializer(body)
        except Exception:  # whatever the parser raises, the body is not a valid request
            return _Undecodable(message_type)

    return deserialize


async def _abort_undecodable(context: grpc.aio.ServicerContext, marker: _Undecodable) -> None:
    request_id = new_request_id()
    log.info("request %s: body is not a valid %s", request_id, marker.message_type)
    error = to_rpc_error(UndecodableRequestError(marker.message_type), request_id)
    status = rpc_status.to_status(error.status)
    await context.abort(status.code, status.details, status.trailing_metadata)


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Undecodable):
            await _abort_undecodable(context, request)
        yield request


def _guarded(behaviour: Behaviour, request_streaming: bool) -> Behaviour:
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if request_streaming:
                request = _checked(request, context)
            elif isinstance(request, _Undecodable):
                await _abort_undecodable(context, request)
            async for response in behaviour(request, context):
                yield response

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request_streaming:
            request = _checked(request, context)
        elif isinstance(request, _Undecodable):
            await _abort_undecodable(context, request)
        return await behaviour(request, context)

    return unary


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


def _measured(inner: Behaviour, method: str) -> Behaviour:
    in_flight = metrics.RPC_IN_FLIGHT.labels(method)
    duration = metrics.RPC_DURATION.labels(method)

    if inspect.isasyncgenfunction(inner):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
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

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
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

    return unary
