"""WireClient.post_json's aiohttp fast path (`MappedAiohttpTransport.post`) against the path through
httpx Request/Response objects, over real loopback sockets: the same request on the wire, the same
answers and the same ProviderErrors, for both transports."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from router_service.config_schema import HttpConfig
from router_service.errors import ErrorClass, ProviderError
from router_service.providers.base import error_from_response, error_from_transport
from router_service.providers.http import MappedAiohttpTransport, make_http_client
from router_service.providers.wire import WireClient, decode_object
from tests.providers.upstream import (
    CLOSE_BEFORE_HEADERS,
    CUT_BODY,
    GARBAGE,
    SILENT,
    FakeUpstream,
    Reply,
    json_reply,
)

HEADERS = {"content-type": "application/json", "authorization": "Bearer k", "X-Extra": "1"}
BODY = b'{"model":"m"}'
PATH = "/v1/chat"


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
    async with FakeUpstream(json_reply(b'{"ok":1}')) as server:
        assert await post_json(clients["aiohttp"], server.url + PATH) == {"ok": 1}
        assert await post_json_via_httpx_objects(clients["aiohttp"], server.url + PATH) == {"ok": 1}
    fast, slow = (request.headers.multi_items() for request in server.requests)
    assert sorted(fast) == sorted(slow)
    assert ("authorization", "Bearer k") in fast and ("x-extra", "1") in fast
    assert [request.body for request in server.requests] == [BODY, BODY]


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(b'{"ok":1}'),
        Reply(200, gzip.compress(b'{"zipped":true}'), [("content-encoding", "gzip")]),
        Reply(429, b'{"error":"slow down"}', [("retry-after", "7")]),
        Reply(500, b"\xe9t\xe9", [("content-type", "text/plain; charset=latin-1")]),
        Reply(200, b"[1, 2]"),
        Reply(200, b"not json"),
    ],
)
async def test_answers_are_read_alike(clients: dict[str, httpx.AsyncClient], reply: Reply) -> None:
    async with FakeUpstream(reply) as server:
        fast = outcome(await post_json(clients["aiohttp"], server.url + PATH))
        slow = outcome(await post_json_via_httpx_objects(clients["aiohttp"], server.url + PATH))
        httpx_transport = outcome(await post_json(clients["httpx"], server.url + PATH))
    assert fast == slow == httpx_transport


@pytest.mark.parametrize("reply", [GARBAGE, CLOSE_BEFORE_HEADERS, CUT_BODY, SILENT])
async def test_failures_raise_the_errors_of_the_slow_path(
    clients: dict[str, httpx.AsyncClient], reply: Reply
) -> None:
    async with FakeUpstream(reply) as server:
        fast = await post_json(clients["aiohttp"], server.url + PATH)
        slow = await post_json_via_httpx_objects(clients["aiohttp"], server.url + PATH)
    assert isinstance(fast, ProviderError) and isinstance(slow, ProviderError)
    assert outcome(fast) == outcome(slow)
    assert type(fast.__cause__) is type(slow.__cause__)
    expected = ErrorClass.TIMEOUT if reply is SILENT else ErrorClass.CONNECTION
    assert fast.error_class is expected


async def test_a_refused_connection_is_a_connection_error(clients: dict[str, httpx.AsyncClient]) -> None:
    async with FakeUpstream(GARBAGE) as server:
        await server.stop_listening()
        result = await post_json(clients["aiohttp"], server.url + PATH)
    assert isinstance(result, ProviderError)
    assert result.error_class is ErrorClass.CONNECTION
    assert isinstance(result.__cause__, httpx.ConnectError)
