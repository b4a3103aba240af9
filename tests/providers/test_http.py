"""The shared HTTP client's error contract, over real loopback sockets, for both transports:
failures surface as the httpx exception types that adapters classify, never as aiohttp errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from router_service.config_schema import HttpConfig
from router_service.providers.http import make_http_client

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
    await writer.drain()
    writer.close()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    writer.close()


async def close_before_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.close()


async def cut_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
    await writer.drain()
    writer.close()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(5)


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    config = HttpConfig(transport=request.param, read_timeout_s=0.3, connect_timeout_s=1)
    async with make_http_client(config) as c:
        yield c


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/"


async def fetch(client: httpx.AsyncClient, handler: Handler) -> bytes:
    server, url = await serve(handler)
    try:
        async with client.stream("GET", url) as response:
            return await response.aread()
    finally:
        server.close()


async def test_ok(client: httpx.AsyncClient) -> None:
    assert await fetch(client, ok) == b"hello"


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (garbage, (httpx.RemoteProtocolError, httpx.ReadError)),
        (close_before_headers, (httpx.RemoteProtocolError, httpx.ReadError)),
        (cut_body, (httpx.RemoteProtocolError, httpx.ReadError)),
        (silent, (httpx.ReadTimeout,)),
    ],
)
async def test_failures_map_to_the_httpx_types_adapters_classify(
    client: httpx.AsyncClient, handler: Handler, expected: tuple[type[Exception], ...]
) -> None:
    with pytest.raises(expected):
        await fetch(client, handler)


async def test_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    server, url = await serve(ok)
    server.close()
    await server.wait_closed()
    with pytest.raises(httpx.ConnectError):
        await client.get(url)
