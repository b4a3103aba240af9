"""The shared upstream HTTP client: one pooled `httpx.AsyncClient` per process.

The transport is a measured choice (see bench/overhead.py and README "Performance"): httpx's own
transport was the bottleneck under concurrency on this machine, so the default keeps httpx's API
over the aiohttp transport from `httpx-aiohttp`. `transport: httpx` remains available, and is the
one that speaks HTTP/2.

httpx-aiohttp 0.2.0 maps aiohttp's errors loosely: any `ClientConnectionError` (including a server
that disconnects) becomes `httpx.ConnectTimeout`, and `ClientResponseError` (an unparsable reply)
escapes unmapped. Adapters classify failures by httpx exception type, so `_MappedAiohttpTransport`
re-maps those cases at this one edge: disconnects are connection errors, garbage is a protocol
error, and only real timeouts are timeouts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from router_service.config_schema import HttpConfig


def make_http_client(config: HttpConfig) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=config.connect_timeout_s,
        read=config.read_timeout_s,
        write=config.read_timeout_s,
        pool=config.connect_timeout_s,
    )
    if config.transport == "httpx":
        limits = httpx.Limits(
            max_connections=config.max_connections,
            max_keepalive_connections=config.max_keepalive_connections,
        )
        return httpx.AsyncClient(timeout=timeout, limits=limits, http2=config.http2)
    transport = _MappedAiohttpTransport(client=lambda: _aiohttp_session(config))
    return httpx.AsyncClient(timeout=timeout, transport=transport)


def _aiohttp_session(config: HttpConfig) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=config.max_connections, ttl_dns_cache=300)
    # httpx applies its own timeouts through the transport; aiohttp's default 5-minute total
    # timeout would otherwise cut long streams.
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))


@contextlib.contextmanager
def _remap() -> Iterator[None]:
    try:
        yield
    except httpx.ConnectTimeout as exc:
        cause = exc.__cause__
        if isinstance(cause, aiohttp.ClientConnectorError):
            raise httpx.ConnectError(str(exc)) from cause
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(
            cause, aiohttp.ServerTimeoutError
        ):
            raise httpx.ReadError(f"connection lost: {cause!r}") from cause
        raise
    except aiohttp.ClientResponseError as exc:
        raise httpx.RemoteProtocolError(f"invalid HTTP response: {exc.message}") from exc
    except aiohttp.ClientError as exc:
        raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc


class _RemappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _remap():
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        with _remap():
            await self._inner.aclose()


class _MappedAiohttpTransport(AiohttpTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _remap():
            response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _RemappedStream(response.stream)
        return response
