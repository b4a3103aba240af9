"""The shared HTTP client's error contract, over real loopback sockets, for both transports:
failures surface as the httpx exception types that adapters classify, never as aiohttp errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from router_service.config_schema import HttpConfig
from router_service.providers.http import make_http_client
from tests.providers.upstream import CLOSE_BEFORE_HEADERS, CUT_BODY, GARBAGE, SILENT, FakeUpstream, Reply


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    config = HttpConfig(transport=request.param, read_timeout_s=0.3, connect_timeout_s=1)
    async with make_http_client(config) as c:
        yield c


async def fetch(client: httpx.AsyncClient, reply: Reply) -> bytes:
    async with FakeUpstream(reply) as upstream, client.stream("GET", upstream.url + "/") as response:
        return await response.aread()


async def test_ok(client: httpx.AsyncClient) -> None:
    assert await fetch(client, Reply(200, b"hello")) == b"hello"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(GARBAGE, (httpx.RemoteProtocolError, httpx.ReadError), id="garbage"),
        pytest.param(
            CLOSE_BEFORE_HEADERS, (httpx.RemoteProtocolError, httpx.ReadError), id="close-before-headers"
        ),
        pytest.param(CUT_BODY, (httpx.RemoteProtocolError, httpx.ReadError), id="cut-body"),
        pytest.param(SILENT, (httpx.ReadTimeout,), id="silent"),
    ],
)
async def test_failures_map_to_the_httpx_types_adapters_classify(
    client: httpx.AsyncClient, reply: Reply, expected: tuple[type[Exception], ...]
) -> None:
    with pytest.raises(expected):
        await fetch(client, reply)


async def test_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    async with FakeUpstream(Reply(200, b"hello")) as upstream:
        await upstream.stop_listening()
        with pytest.raises(httpx.ConnectError):
            await client.get(upstream.url + "/")
