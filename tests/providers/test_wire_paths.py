"""WireClient's two paths, on public APIs only: the aiohttp transport `make_http_client` built (known
through `UpstreamClient`, not httpx's private per-URL lookup), and `AsyncClient.send` for anything
else. Neither adds httpx's default headers, and neither carries an upstream's cookie onward."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from router_service.errors import ErrorClass, ProviderError
from router_service.providers.http import UpstreamClient
from router_service.providers.wire import WireClient
from tests.providers.upstream import FakeUpstream, Reply, http_client, json_reply, sse_reply

HEADERS = {"authorization": "Bearer k", "content-type": "application/json"}
COOKIE = (("set-cookie", "session=abc; Path=/"),)


def _error(status: int, headers: httpx.Headers, text: str) -> ProviderError:
    return ProviderError(ErrorClass.SERVER, f"{status}: {text}")


@pytest.fixture(params=["aiohttp", "httpx", "plain"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    if request.param == "plain":  # a client make_http_client did not build: the `send` path
        async with httpx.AsyncClient() as plain:
            yield plain
    else:
        async with http_client(transport=request.param) as made:
            yield made


async def _exchange(wire: WireClient, url: str) -> None:
    assert await wire.post_json(url, b"{}") == {"ok": True}
    async with wire.stream(url, b"{}") as events:
        assert [event.data async for event in events] == ["1"]


async def test_unary_and_stream_send_only_the_adapters_headers_and_no_cookies(
    upstream: FakeUpstream, client: httpx.AsyncClient
) -> None:
    cookie_reply = json_reply({"ok": True}, headers=COOKIE)
    stream_reply: Reply = sse_reply([b"data: 1\n\n"], headers=COOKIE)
    upstream.script(cookie_reply, stream_reply, cookie_reply, stream_reply)
    wire = WireClient(client, HEADERS, _error)
    # By name: cookie jars keep no cookies for a bare IP address, which would hide the point.
    url = upstream.url.replace("127.0.0.1", "localhost") + "/v1/x"
    await _exchange(wire, url)
    await _exchange(wire, url)

    assert len(upstream.requests) == 4
    for request in upstream.requests:
        assert request.headers["authorization"] == "Bearer k"
        assert "cookie" not in request.headers
        # httpx's client-level defaults are never added (aiohttp adds its own, as it always has).
        assert not request.headers.get("user-agent", "").startswith("python-httpx")


async def test_only_a_client_built_by_make_http_client_has_the_fast_transport() -> None:
    async with http_client(transport="aiohttp") as aiohttp_client, http_client(transport="httpx") as own:
        assert isinstance(aiohttp_client, UpstreamClient) and aiohttp_client.upstream_transport is not None
        assert isinstance(own, UpstreamClient) and own.upstream_transport is None
