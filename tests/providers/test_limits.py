"""Upstream answers are bounded: over a real loopback HTTP server that sends huge bodies (generated
lazily, never held whole by the server), on both transports, every oversized answer is a BAD_RESPONSE
attempt, read no further than the bound, and the process's peak RSS stays far below the body size."""

from __future__ import annotations

import asyncio
import gzip
import re
from collections.abc import AsyncIterator, Awaitable
from typing import Literal

import httpx
import pytest

from router_service.config_schema import HttpConfig
from router_service.domain import ChatRequest, Message, Role
from router_service.errors import ErrorClass, ProviderError
from router_service.providers.base import ProviderEndpoint
from router_service.providers.http import make_http_client
from router_service.providers.limits import ResponseLimits
from router_service.providers.openai import OpenAIAdapter
from router_service.providers.sse import SSEParser
from tests.providers.upstream import FakeUpstream, Headers, Reply, json_reply

HUGE = 200 << 20  # what the server offers
PIECE = 64 << 10
REQUEST = ChatRequest(messages=(Message(Role.USER, "hi"),))
OK_BODY = (
    b'{"id": "r", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},'
    b' "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
)


def huge(
    status: int, headers: Headers = (), *, chunked: bool, piece: bytes = b"x" * PIECE, prefix: bytes = b""
) -> Reply:
    """HUGE bytes offered, in `piece`s after `prefix`: a tuple of one object repeated, so the
    server never holds the body and the reply can be replayed (each transport gets its turn)."""
    pieces = ((prefix,) if prefix else ()) + (piece,) * (HUGE // len(piece))
    if chunked:
        return Reply(status, pieces, headers, "chunked")
    length = sum(map(len, pieces))
    return Reply(status, pieces, (*headers, ("content-length", str(length))), "close")


def gzip_bomb() -> Reply:
    body = gzip.compress(b"[" + b" " * HUGE + b"]", compresslevel=9)  # ~200 KB on the wire
    return Reply(200, body, (("content-encoding", "gzip"),))


def peak_rss_reset() -> None:
    """Resets VmHWM to the current RSS (Linux: clear_refs 5), so a peak is this test's own."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        match = re.search(rf"{field}:\s+(\d+) kB", f.read())
    assert match is not None
    return int(match.group(1))


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client(HttpConfig(transport=request.param, read_timeout_s=30)) as made:
        yield made


DEFAULT_LIMITS = ResponseLimits()


def adapter(client: httpx.AsyncClient, url: str, limits: ResponseLimits = DEFAULT_LIMITS) -> OpenAIAdapter:
    return OpenAIAdapter(ProviderEndpoint("p", "openai", url, "sk-test", limits=limits), client)


async def fails_as_bad_response(call: Awaitable[object]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    assert caught.value.error_class is ErrorClass.BAD_RESPONSE, caught.value
    return caught.value


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(huge(200, chunked=False), id="content-length"),
        pytest.param(huge(200, chunked=True), id="chunked"),
        pytest.param(gzip_bomb(), id="gzip-bomb"),
    ],
)
async def test_an_oversized_answer_is_bad_response_and_rss_stays_bounded(
    client: httpx.AsyncClient, reply: Reply
) -> None:
    async with FakeUpstream(reply) as server:
        peak_rss_reset()
        before = rss_kib("VmRSS")
        error = await fails_as_bad_response(adapter(client, server.url + "/v1").complete(REQUEST, "m"))
        peak = rss_kib("VmHWM")
    assert "larger than 16777216 bytes" in error.message
    # 200 MB offered; the bound is 16 MiB. Generous: the bound read once, plus copies and slack.
    assert (peak - before) < 120 << 10, f"RSS grew by {(peak - before) >> 10} MiB"
    assert server.body_bytes_sent < HUGE // 2  # reading stopped: the server could not push its whole body


async def test_content_length_over_the_bound_fails_before_reading(client: httpx.AsyncClient) -> None:
    async with FakeUpstream(huge(200, chunked=False)) as server:
        await fails_as_bad_response(adapter(client, server.url + "/v1").complete(REQUEST, "m"))
        await asyncio.sleep(0.05)
    # Only what the kernel's socket buffers took in before the close; never the 16 MiB bound.
    assert server.body_bytes_sent < 16 << 20


async def test_a_body_within_a_small_configured_bound_is_read_and_one_byte_more_is_not(
    client: httpx.AsyncClient,
) -> None:
    limits = ResponseLimits(max_response_bytes=len(OK_BODY))
    async with FakeUpstream(json_reply(OK_BODY)) as server:
        result = await adapter(client, server.url + "/v1", limits).complete(REQUEST, "m")
    assert result.message.content == "ok"
    limits = ResponseLimits(max_response_bytes=len(OK_BODY) - 1)
    async with FakeUpstream(json_reply(OK_BODY)) as server:
        await fails_as_bad_response(adapter(client, server.url + "/v1", limits).complete(REQUEST, "m"))


async def test_a_huge_error_body_is_read_only_as_a_prefix(client: httpx.AsyncClient) -> None:
    reply = huge(500, [("content-type", "text/plain")], chunked=True)
    async with FakeUpstream(reply) as server:
        peak_rss_reset()
        before = rss_kib("VmRSS")
        with pytest.raises(ProviderError) as caught:
            await adapter(client, server.url + "/v1").complete(REQUEST, "m")
        peak = rss_kib("VmHWM")
    assert caught.value.error_class is ErrorClass.OVERLOADED  # the status still decides
    assert caught.value.status_code == 500
    assert len(caught.value.message) < 400
    assert (peak - before) < 64 << 10
    assert server.body_bytes_sent < HUGE // 2


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_stream_line_that_never_ends_is_bad_response(transport: Literal["aiohttp", "httpx"]) -> None:
    reply = huge(200, [("content-type", "text/event-stream")], chunked=True, prefix=b"data: ")
    async with (
        make_http_client(HttpConfig(transport=transport, read_timeout_s=30)) as client,
        FakeUpstream(reply) as server,
    ):
        peak_rss_reset()
        before = rss_kib("VmRSS")
        error = await fails_as_bad_response(_drain(adapter(client, server.url + "/v1"), REQUEST))
        peak = rss_kib("VmHWM")
    assert "line longer than 1048576 bytes" in error.message
    assert (peak - before) < 64 << 10
    assert server.body_bytes_sent < HUGE // 2


async def test_a_stream_over_its_total_bound_is_bad_response(client: httpx.AsyncClient) -> None:
    chunk = b'data: {"choices": [{"index": 0, "delta": {"content": "x"}}]}\n\n'
    reply = huge(200, [("content-type", "text/event-stream")], chunked=True, piece=chunk * 100)
    limits = ResponseLimits(max_stream_bytes=1 << 20)
    async with FakeUpstream(reply) as server:
        events = []
        with pytest.raises(ProviderError) as caught:
            async for event in adapter(client, server.url + "/v1", limits).stream(REQUEST, "m"):
                events.append(event)
    assert caught.value.error_class is ErrorClass.BAD_RESPONSE
    assert "stream larger than 1048576 bytes" in caught.value.message
    assert 0 < len(events) <= (1 << 20) // len(chunk)
    assert server.body_bytes_sent < HUGE // 2


async def _drain(adapter: OpenAIAdapter, request: ChatRequest) -> None:
    async for _ in adapter.stream(request, "m"):
        pass


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: " + b"x" * 2000],  # one chunk, no newline
        [b"data: " + b"x" * 600, b"x" * 600],  # a line across chunks
        [b"data: a\n\n" + b"data: " + b"x" * 2000 + b"\n\n"],  # a whole long line inside one chunk
        [b"data: " + b"x" * 700 + b"\n", b"data: " + b"x" * 700 + b"\n"],  # one event's data, two lines
    ],
)
def test_the_parser_refuses_long_lines_and_events(chunks: list[bytes]) -> None:
    parser = SSEParser(max_line_bytes=1024)
    with pytest.raises(ProviderError) as caught:
        for chunk in chunks:
            parser.feed(chunk)
    assert caught.value.error_class is ErrorClass.BAD_RESPONSE


def test_the_parser_takes_lines_up_to_the_bound() -> None:
    parser = SSEParser(max_line_bytes=1024)
    line = b"data: " + b"y" * (1024 - 6)
    events = parser.feed(line[:500]) + parser.feed(line[500:] + b"\r\n\r\n")
    assert [e.data for e in events] == ["y" * 1018]
