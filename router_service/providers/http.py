"""The shared upstream HTTP client: one pooled `httpx.AsyncClient` per process.

The transport is a measured choice (see bench/overhead.py and README "Performance"): httpx's own
transport was the bottleneck under concurrency on this machine, so the default keeps httpx's API
over the aiohttp transport from `httpx-aiohttp`. `transport: httpx` remains available, and is the
one that speaks HTTP/2.

httpx-aiohttp 0.2.0 maps aiohttp's errors loosely: any `ClientConnectionError` (including a server
that disconnects) becomes `httpx.ConnectTimeout`, and `ClientResponseError` (an unparsable reply)
escapes unmapped. Adapters classify failures by httpx exception type, so `MappedAiohttpTransport`
re-maps those cases at this one edge: disconnects are connection errors, garbage is a protocol
error, and only real timeouts are timeouts.

One stack: every provider call goes through the httpx API on one pooled client; on the default
transport the connections are the aiohttp session inside httpx-aiohttp's transport, and nothing else
opens its own (the simulator and benches' aiohttp use is server-side or a labelled reference).
`UpstreamClient` remembers the transport it was built with, so WireClient reaches it without httpx's
private per-URL lookup.

`MappedAiohttpTransport.post` is the unary fast path `WireClient.post_json` takes on this transport:
the same aiohttp call and the same error mapping, without an httpx Request and Response around it
(see its docstring for the cost).
"""

from __future__ import annotations

import contextlib
import http.cookiejar
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, NoReturn

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import map_aiohttp_exceptions

from router_service.config_schema import HttpConfig
from router_service.errors import ProviderError
from router_service.providers.limits import ResponseLimits, too_large


class UpstreamClient(httpx.AsyncClient):
    """The shared client, knowing the transport it was built with: `WireClient` reaches the aiohttp
    fast path (`MappedAiohttpTransport.post`) and its streams' transport through `transport`, an
    attribute of ours, not through httpx's private per-URL lookup. `transport` is None on httpx's
    own transport, whose calls go through `AsyncClient.send` (redirects off, cookies refused)."""

    def __init__(self, *, transport: MappedAiohttpTransport | None = None, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self.upstream_transport = transport


def _no_cookies() -> http.cookiejar.CookieJar:
    # As the aiohttp session's DummyCookieJar: the client is shared by every caller, so an
    # upstream's Set-Cookie must never ride along on another caller's request.
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


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
        return UpstreamClient(timeout=timeout, limits=limits, http2=config.http2, cookies=_no_cookies())
    transport = MappedAiohttpTransport(client=lambda: _aiohttp_session(config))
    return UpstreamClient(timeout=timeout, transport=transport, cookies=_no_cookies())


def _aiohttp_session(config: HttpConfig) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=config.max_connections, ttl_dns_cache=300)
    # httpx applies its own timeouts through the transport; aiohttp's default 5-minute total
    # timeout would otherwise cut long streams.
    # No cookie jar: the session is shared by every caller, and an upstream's Set-Cookie (a CDN's
    # bot-management cookie, say) must not ride along on everyone's later requests.
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), cookie_jar=aiohttp.DummyCookieJar()
    )


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


def _raise_as_httpx_error(exc: Exception) -> NoReturn:
    """Raise what the transport raises for `exc`: httpx-aiohttp's mapping, then ours (`_remap`)."""
    with _remap(), map_aiohttp_exceptions():
        raise exc


def client_timeout(timeout: httpx.Timeout) -> aiohttp.ClientTimeout:
    """The aiohttp timeout AiohttpTransport derives from httpx's timeouts for every request."""
    return aiohttp.ClientTimeout(sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool)


class MappedAiohttpTransport(AiohttpTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _remap():
            response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _RemappedStream(response.stream)
        return response

    async def post(
        self,
        url: str,
        headers: Mapping[str, str],
        content: bytes,
        timeouts: aiohttp.ClientTimeout,
        limits: ResponseLimits,
    ) -> bytes | httpx.Response:
        """One unary POST, read within `limits`: the body of a 2xx answer without Content-Encoding
        (the common case), else the answer as an unread httpx.Response over the raw bytes read (at
        most `max_error_body_bytes` of an error answer), for the caller to decode as httpx would.
        A 2xx answer over `max_response_bytes` (announced by Content-Length, or read so far) raises
        BAD_RESPONSE and drops the connection: the rest is never read.

        The request is the one `handle_async_request` sends for the same URL, headers (`headers`
        as httpx sends them: lower-case names, Host first) and body, and failures raise the same
        httpx errors. Skipping the httpx Request and Response objects, their header conversions,
        the stream wrappers and four context managers cut the client's CPU per call from 410 to
        280 us (median of 10 reps against the "instant" sim, concurrency 32, this machine).
        """
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        try:
            async with self.client.request(
                "POST",
                url,
                headers=headers,
                data=content or None,
                allow_redirects=False,
                auto_decompress=False,  # decoded below exactly as httpx would
                compress=False,
                timeout=timeouts,  # aiohttp's backstops; the engine bounds each attempt
            ) as response:
                success = 200 <= response.status < 300
                limit = limits.max_response_bytes if success else limits.max_error_body_bytes
                if success and (response.content_length or 0) > limit:
                    response.close()
                    raise too_large("response body", limit)
                body = await _read_at_most(response.content, limit + 1)
                if len(body) > limit:
                    response.close()  # the rest is never read: the connection cannot be reused
                    if success:
                        raise too_large("response body", limit)
                    body = body[:limit]
        except ProviderError:
            raise
        except Exception as exc:
            _raise_as_httpx_error(exc)
        if success and "Content-Encoding" not in response.headers:
            return body
        # Rare: an error answer, or an encoded body: decoded by the caller, as httpx would.
        return httpx.Response(response.status, headers=response.raw_headers, stream=httpx.ByteStream(body))


async def _read_at_most(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The body, or its first `limit` bytes if it is longer (the rest stays unread)."""
    first = await content.read(limit)
    if not first or len(first) >= limit:
        return first
    body = bytearray(first)
    while len(body) < limit:
        chunk = await content.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)
