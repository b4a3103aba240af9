"""Test helpers shared by the provider adapter tests: scripted upstream answers served through
httpx.MockTransport, response bodies delivered in chosen chunks, and stream collectors."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from typing import Any, ClassVar, TypeVar

import httpx
import pytest

from router_service.domain import ChatRequest, StreamEvent
from router_service.errors import ProviderError
from router_service.providers.base import ProviderAdapter, ProviderEndpoint

AdapterT = TypeVar("AdapterT")


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class ChunkedStream(httpx.AsyncByteStream):
    """A response body delivered in exactly the chunks given, optionally failing after the last one.

    `chunks` is iterated lazily, so a generator can stand for a body too large to build;
    `chunks_sent` counts what the reader pulled and `closed` tells whether the response was closed."""

    def __init__(self, chunks: Iterable[bytes], error: Exception | None = None) -> None:
        self._chunks = chunks
        self._error = error
        self.chunks_sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            self.chunks_sent += 1
            yield chunk
        if self._error is not None:
            raise self._error

    async def aclose(self) -> None:
        self.closed = True


class Upstream:
    """MockTransport handler: records each request and replays one scripted answer."""

    # Headers of every answer that is not streamed, before the scripted `headers`.
    body_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        *,
        stream: ChunkedStream | None = None,
        headers: dict[str, str] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.stream = stream
        self.headers = headers or {}
        self.error = error
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        if self.stream is not None:
            headers = {"content-type": "text/event-stream", **self.headers}
            return httpx.Response(self.status, headers=headers, stream=self.stream)
        return httpx.Response(self.status, headers={**self.body_headers, **self.headers}, content=self.body)

    @property
    def sent(self) -> dict[str, Any]:
        """The JSON body of the last request."""
        body: dict[str, Any] = json.loads(self.requests[-1].content)
        return body


def sse_upstream(data: bytes, chunk_size: int | None = None, error: Exception | None = None) -> Upstream:
    """An Upstream that streams `data` whole or in `chunk_size` pieces, then fails with `error`."""
    chunks = [data] if chunk_size is None else split_every(data, chunk_size)
    return Upstream(stream=ChunkedStream(chunks, error))


def adapter_factory(
    stack: AsyncExitStack,
    make: Callable[[ProviderEndpoint, httpx.AsyncClient], AdapterT],
    endpoint: ProviderEndpoint,
) -> Callable[..., AdapterT]:
    """`factory(upstream, options=None, headers=None)`: an adapter for `endpoint`, with those options
    and headers, whose client is served by `upstream`. The clients are closed with `stack`."""

    def factory(
        upstream: Upstream,
        options: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> AdapterT:
        client = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
        stack.push_async_callback(client.aclose)
        return make(dataclasses.replace(endpoint, headers=headers or {}, options=options or {}), client)

    return factory


async def collect(adapter: ProviderAdapter, request: ChatRequest, model: str) -> list[StreamEvent]:
    return [event async for event in adapter.stream(request, model)]


async def collect_until_error(
    adapter: ProviderAdapter, request: ChatRequest, model: str
) -> tuple[list[StreamEvent], ProviderError]:
    """The events a stream yields before it raises, and the ProviderError it raises."""
    events: list[StreamEvent] = []
    with pytest.raises(ProviderError) as caught:
        async for event in adapter.stream(request, model):
            events.append(event)
    return events, caught.value
