"""Per-call metrics of the OpenAI door, as the gRPC MetricsInterceptor keeps them for RPCs: a count
by route, HTTP status and final router status code, a duration histogram and an in-flight gauge
(the families are in telemetry/metrics.py).

An aiohttp middleware, outermost, so that it sees every call, the 404 of an unknown route and a
caller that went away (the handler cancelled: status 499, code CANCELLED) included. The status
alone cannot say how a call ended: an SSE stream has sent its 200 before it fails, and 400 is
several codes. So the handlers `note` the error a call ended with, and the middleware labels it
with `errors.status_of`'s code, the one a gRPC call failing the same way is counted under.
"""

from __future__ import annotations

import asyncio
import functools
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import Counter, Gauge, Histogram

from router_service.errors import status_of
from router_service.telemetry import metrics

CLIENT_CLOSED = 499  # the caller disconnected before an answer (nginx's convention)
_CODE = web.RequestKey("router_code", str)


def note(request: web.Request, error: BaseException) -> None:
    """The call ends with `error` (answered with an error status, or as a stream's error event)."""
    request[_CODE] = status_of(error)[0]


def note_code(request: web.Request, code: str) -> None:
    request[_CODE] = code


@functools.cache
def _requests(route: str, status: int, code: str) -> Counter:
    """Labelled child per (route, status, code): all three sets are small and fixed."""
    return metrics.HTTP_REQUESTS.labels(route, str(status), code)


@functools.cache
def _route(route: str) -> tuple[Gauge, Histogram]:
    """The route's in-flight gauge and duration children, looked up once (`labels` takes a lock)."""
    return metrics.HTTP_IN_FLIGHT.labels(route), metrics.HTTP_DURATION.labels(route)


@web.middleware
async def measured(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.name or "unknown"
    in_flight, duration = _route(route)
    started = time.perf_counter()
    in_flight.inc()
    status, code = 500, "INTERNAL"
    try:
        response = await handler(request)
        status = response.status
        code = request.get(_CODE, "OK" if status < 400 else "UNKNOWN")
        return response
    except asyncio.CancelledError:
        status, code = CLIENT_CLOSED, "CANCELLED"
        raise
    except web.HTTPException as exc:  # aiohttp's own answers (none of the door's routes raise them)
        status, code = exc.status, "UNKNOWN"
        raise
    finally:
        in_flight.dec()
        duration.observe(time.perf_counter() - started)
        _requests(route, status, code).inc()
