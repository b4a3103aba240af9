"""Test helpers shared by the provider adapter tests: the `upstream` and `client` fixtures' adapter
factory, and stream collectors. The fake upstream itself is tests/providers/upstream.py."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import pytest

from router_service.domain import ChatRequest, StreamEvent
from router_service.errors import ErrorClass, ProviderError
from router_service.providers.base import ProviderAdapter, ProviderEndpoint
from tests.providers.upstream import CLOSE_BEFORE_HEADERS, SILENT, FakeUpstream, Reply, http_client

AdapterT = TypeVar("AdapterT")


def adapter_factory(
    upstream: FakeUpstream,
    client: httpx.AsyncClient,
    make: Callable[[ProviderEndpoint, httpx.AsyncClient], AdapterT],
    endpoint: ProviderEndpoint,
) -> Callable[..., AdapterT]:
    """`factory(reply=None, options=None, headers=None, client=client)`: an adapter for `endpoint`
    moved onto `upstream` (same path), with those options and headers; a `reply` becomes upstream's
    standing answer."""

    def factory(
        reply: Reply | None = None,
        options: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        *,
        client: httpx.AsyncClient = client,
    ) -> AdapterT:
        if reply is not None:
            upstream.reply = reply
        moved = dataclasses.replace(
            endpoint,
            base_url=upstream.url + urlsplit(endpoint.base_url).path,
            headers=headers or {},
            options=options or {},
        )
        return make(moved, client)

    return factory


# Transport faults a real upstream produces, what each becomes, and the httpx errors the adapter may
# keep as the cause (the two client transports name a cut connection differently).
TRANSPORT_FAULTS = [
    pytest.param("refused", ErrorClass.CONNECTION, (httpx.ConnectError,), id="refused"),
    pytest.param("silent", ErrorClass.TIMEOUT, (httpx.ReadTimeout,), id="read-timeout"),
    pytest.param(
        "closed",
        ErrorClass.CONNECTION,
        (httpx.RemoteProtocolError, httpx.ReadError),
        id="closed-before-headers",
    ),
]
CUT_MID_BODY = (httpx.RemoteProtocolError, httpx.ReadError)


@asynccontextmanager
async def faulty(fault: str, upstream: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    """A client (with a short read timeout, so that "silent" is over quickly) whose next request to
    `upstream` meets `fault`."""
    if fault == "refused":
        await upstream.stop_listening()
    else:
        upstream.reply = SILENT if fault == "silent" else CLOSE_BEFORE_HEADERS
    async with http_client(read_timeout_s=0.3) as client:
        yield client


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
