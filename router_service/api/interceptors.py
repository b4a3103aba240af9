"""Server interceptors: per-RPC metrics (count by status code, duration, in-flight), the guard
that answers a request body that does not decode with INVALID_ARGUMENT, and the shutdown gate
that refuses calls once the router began to stop.

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

from router_service.api.servicer import new_request_id, request_id_for
from router_service.api.status import DEFAULT_RETRY_DELAY_S, to_rpc_error
from router_service.api.trace_context import trace_ids
from router_service.errors import ShuttingDownError, UndecodableRequestError, status_of
from router_service.telemetry import metrics
from router_service.telemetry.events import ErrorEvent, EventSink, RequestContext, TelemetryEvent

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


class ShutdownGate(_CachingInterceptor):
    """Once `close()` is called, every call of `service` that reaches a handler is refused:
    UNAVAILABLE with RetryInfo and ErrorInfo SHUTTING_DOWN, and (for Complete and Stream, the
    calls that publish events) its error event. Until then it counts the calls running, so the
    stop can wait for exactly those (`wait_idle`) before the server stops.

    Why not leave it to `server.stop(grace)`: grpc.aio CANCELs (no details, no event) each call
    the core accepted but had not handed to a handler yet, and once stopped the core refuses new
    ones itself, without RetryInfo. With the gate the server keeps accepting while the started
    calls finish, and every call that arrives meanwhile gets an answer a client knows to retry.
    Install it inside the metrics interceptor, so the refusals are counted by code."""

    def __init__(
        self, service: str, sink: EventSink, *, retry_after_s: float = DEFAULT_RETRY_DELAY_S
    ) -> None:
        super().__init__()
        self._prefix = f"/{service}/"
        self._sink = sink
        self._retry_after_s = retry_after_s
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.closed = False
        self.refused = 0

    @property
    def running(self) -> int:
        """Calls of the service started (before the close) and not finished."""
        return self._running

    def close(self) -> None:
        """Start no more calls. Synchronous: nothing can start between the stop and this."""
        self.closed = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no started call is running, at most `timeout_s`; False if some still are."""
        try:
            await asyncio.wait_for(self._idle.wait(), max(0.0, timeout_s))
        except TimeoutError:
            return False
        return True

    def _wrap(self, handler: grpc.RpcMethodHandler, method_path: str) -> grpc.RpcMethodHandler:
        if not method_path.startswith(self._prefix):  # health and reflection answer while stopping
            return handler
        method = method_path.rsplit("/", 1)[-1]
        return _rewrap(handler, lambda behaviour, _: self._gated(behaviour, method in _EVENTED_METHODS))

    def _gated(self, behaviour: Behaviour, evented: bool) -> Behaviour:
        if inspect.isasyncgenfunction(behaviour):

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                if self.closed:
                    await self._refuse(request, context, evented)
                self._started()
                try:
                    async for response in behaviour(request, context):
                        yield response
                finally:
                    self._finished()

            return stream

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if self.closed:
                await self._refuse(request, context, evented)
            self._started()
            try:
                return await behaviour(request, context)
            finally:
                self._finished()

        return unary

    def _started(self) -> None:
        self._running += 1
        self._idle.clear()

    def _finished(self) -> None:
        self._running -= 1
        if not self._running:
            self._idle.set()

    async def _refuse(self, request: Any, context: grpc.aio.ServicerContext, evented: bool) -> None:
        # The caller's id when it is valid (an undecodable body has none): the error event and
        # ErrorInfo name the call the client will retry.
        request_id = request_id_for(str(getattr(request, "request_id", "")))
        error = ShuttingDownError(self._retry_after_s)
        self.refused += 1
        if evented:
            trace_id, span_id = trace_ids(context.invocation_metadata())
            code, reason = status_of(error)
            event_context = RequestContext(request_id=request_id, trace_id=trace_id, span_id=span_id)
            body = ErrorEvent(code, reason, str(error), attempt_count=0)
            self._sink.publish(TelemetryEvent.create(event_context, body, now_unix_s=time.time()))
        status = rpc_status.to_status(to_rpc_error(error, request_id).status)
        await context.abort(status.code, status.details, status.trailing_metadata)


_EVENTED_METHODS = frozenset({"Complete", "Stream"})


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
