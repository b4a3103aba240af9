"""WireClient.post_json's aiohttp fast path (`MappedAiohttpTransport.post`) against the path through
httpx Request/Response objects, over real loopback sockets: the same request on the wire, the same
answers and the same ProviderErrors, for both transports."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from router_service.config_schema import HttpConfig
from router_service.errors import ErrorClass, ProviderError
from router_service.providers.base import error_from_response, error_from_transport
from router_service.providers.http import MappedAiohttpTransport, make_http_client
from router_service.providers.wire import WireClient, decode_object

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEADERS = {"content-type": "application/json", "authorization": "Bearer k", "X-Extra": "1"}
BODY = b'{"model":"m"}'


class Server:
    """A loopback HTTP/1.1 server answering every request with `reply`; keeps each request's head."""

    def __init__(self, reply: Handler) -> None:
        self.reply = reply
        self.heads: list[list[tuple[str, str]]] = []
        self.bodies: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[1:-2]
        headers = [(n.lower(), v) for n, _, v in (line.partition(": ") for line in head)]
        self.heads.append(headers)
        self.bodies.append(await reader.readexactly(int(dict(headers).get("content-length", "0"))))
        await self.reply(reader, writer)

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1/chat"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


def answer(status: str, headers: list[tuple[str, str]], body: bytes) -> Handler:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines = [f"HTTP/1.1 {status}", *(f"{n}: {v}" for n, v in headers)]
        lines += [f"content-length: {len(body)}", "connection: close"]  # no reuse of a closed socket
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
        writer.close()

    return reply


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    writer.close()


async def close_before_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def cut_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
    await writer.drain()
    writer.close()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(5)


def http_error(status: int, headers: httpx.Headers, body_text: str) -> ProviderError:
    return error_from_response(status, headers, body_text)


@pytest.fixture
async def clients() -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    made = {
        transport: make_http_client(HttpConfig(transport=transport, read_timeout_s=0.3, connect_timeout_s=1))
        for transport in ("aiohttp", "httpx")
    }
    assert isinstance(made["aiohttp"]._transport, MappedAiohttpTransport)
    yield made
    for client in made.values():
        await client.aclose()


async def post_json(client: httpx.AsyncClient, url: str) -> dict[str, Any] | ProviderError:
    """WireClient.post_json: the fast path on the aiohttp transport, httpx objects on the other."""
    try:
        return await WireClient(client, HEADERS, http_error).post_json(httpx.URL(url), BODY)
    except ProviderError as exc:
        return exc


async def post_json_via_httpx_objects(client: httpx.AsyncClient, url: str) -> dict[str, Any] | ProviderError:
    """What post_json did before the fast path, on whatever transport `client` has."""
    wire = WireClient(client, HEADERS, http_error)
    try:
        try:
            response = await wire._send(httpx.URL(url), BODY)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise error_from_transport(exc) from exc
    except ProviderError as exc:
        return exc
    if not response.is_success:
        return http_error(response.status_code, response.headers, response.text)
    try:
        return decode_object(response.content, "response body")
    except ProviderError as exc:
        return exc


def outcome(result: dict[str, Any] | ProviderError) -> object:
    if isinstance(result, ProviderError):
        return (result.error_class, str(result), result.status_code, result.retry_after_s)
    return result


async def test_the_fast_path_sends_what_the_aiohttp_transport_sends(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    async with Server(answer("200 OK", [("content-type", "application/json")], b'{"ok":1}')) as server:
        assert await post_json(clients["aiohttp"], server.url) == {"ok": 1}
        assert await post_json_via_httpx_objects(clients["aiohttp"], server.url) == {"ok": 1}
    fast, slow = server.heads
    assert sorted(fast) == sorted(slow)
    assert ("authorization", "Bearer k") in fast and ("x-extra", "1") in fast
    assert server.bodies == [BODY, BODY]


@pytest.mark.parametrize(
    "reply",
    [
        answer("200 OK", [("content-type", "application/json")], b'{"ok":1}'),
        answer("200 OK", [("content-encoding", "gzip")], gzip.compress(b'{"zipped":true}')),
        answer("429 Too Many Requests", [("retry-after", "7")], b'{"error":"slow down"}'),
        answer("500 Internal Server Error", [("content-type", "text/plain; charset=latin-1")], b"\xe9t\xe9"),
        answer("200 OK", [], b"[1, 2]"),
        answer("200 OK", [], b"not json"),
    ],
)
async def test_answers_are_read_alike(clients: dict[str, httpx.AsyncClient], reply: Handler) -> None:
    async with Server(reply) as server:
        fast = outcome(await post_json(clients["aiohttp"], server.url))
        slow = outcome(await post_json_via_httpx_objects(clients["aiohttp"], server.url))
        httpx_transport = outcome(await post_json(clients["httpx"], server.url))
    assert fast == slow == httpx_transport


@pytest.mark.parametrize("reply", [garbage, close_before_headers, cut_body, silent])
async def test_failures_raise_the_errors_of_the_slow_path(
    clients: dict[str, httpx.AsyncClient], reply: Handler
) -> None:
    async with Server(reply) as server:
        fast = await post_json(clients["aiohttp"], server.url)
        slow = await post_json_via_httpx_objects(clients["aiohttp"], server.url)
    assert isinstance(fast, ProviderError) and isinstance(slow, ProviderError)
    assert outcome(fast) == outcome(slow)
    assert type(fast.__cause__) is type(slow.__cause__)
    expected = ErrorClass.TIMEOUT if reply is silent else ErrorClass.CONNECTION
    assert fast.error_class is expected


async def test_a_refused_connection_is_a_connection_error(clients: dict[str, httpx.AsyncClient]) -> None:
    async with Server(garbage) as server:
        url = server.url
    await asyncio.sleep(0)
    result = await post_json(clients["aiohttp"], url)
    assert isinstance(result, ProviderError)
    assert result.error_class is ErrorClass.CONNECTION
    assert isinstance(result.__cause__, httpx.ConnectError)
