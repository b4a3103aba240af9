"""The overhead bench's clients: each yields an async `call()` that does one request and raises
on failure, and the requests they send (bench/overhead.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import aiohttp
import grpc

from bench.load import Call
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.config_schema import HttpConfig
from router_service.providers.http import make_http_client

ECHO_METHOD = "/bench.v1.Echo/Echo"
MODEL = "bench-model"
API_KEY = "bench-key"
PROMPT = "Hello router"
ECHO_PAYLOAD = b"x" * 64
# The body the router's OpenAI adapter sends for a CompleteRequest with one user message.
HTTP_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}).encode()
# What a caller of the router's OpenAI door sends for the gRPC row's request: automatic routing
# under the default policy (`router`), one user message.
DOOR_BODY = json.dumps({"model": "router", "messages": [{"role": "user", "content": PROMPT}]}).encode()
DOOR_HEADERS = {"content-type": "application/json"}
HTTP_HEADERS = {"content-type": "application/json", "authorization": f"Bearer {API_KEY}"}

CALL_TIMEOUT_S = 10.0  # per request; a stuck request fails the cell instead of hanging the bench

# Calls answered per router port, for CPU per request (a machine-noise-proof cost measure).
ROUTER_CALLS: dict[int, int] = {}


def count_router_call(port: int) -> None:
    ROUTER_CALLS[port] = ROUTER_CALLS.get(port, 0) + 1


def direct_target(transport: str) -> str:
    return f"http/{transport}"


@asynccontextmanager
async def echo_client(port: int) -> AsyncIterator[Call]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        echo = channel.unary_unary(ECHO_METHOD)

        async def call() -> None:
            await echo(ECHO_PAYLOAD, timeout=CALL_TIMEOUT_S)

        yield call


@asynccontextmanager
async def router_client(port: int, metadata: tuple[tuple[str, str], ...] = ()) -> AsyncIterator[Call]:
    chat = pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content=PROMPT)])
    request = pb.CompleteRequest(chat=chat)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        complete = pb_grpc.RouterServiceStub(channel).Complete

        async def call() -> None:
            response = await complete(request, timeout=CALL_TIMEOUT_S, metadata=metadata or None)
            if not response.message.content:
                raise RuntimeError("empty answer from the router")
            count_router_call(port)

        yield call


@asynccontextmanager
async def httpx_client(url: str, transport: Literal["aiohttp", "httpx"]) -> AsyncIterator[Call]:
    """The router's own upstream client (`make_http_client`) with the given transport."""
    async with make_http_client(HttpConfig(transport=transport)) as client:

        async def call() -> None:
            response = await client.post(url, content=HTTP_BODY, headers=HTTP_HEADERS)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

        yield call


@asynccontextmanager
async def aiohttp_session() -> AsyncIterator[aiohttp.ClientSession]:
    """A lean client: a raw aiohttp session with keep-alive and room for every concurrent call."""
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield session


@asynccontextmanager
async def aiohttp_raw_client(url: str) -> AsyncIterator[Call]:
    async with aiohttp_session() as session:

        async def call() -> None:
            await post_ok(session, url, HTTP_BODY, HTTP_HEADERS)

        yield call


@asynccontextmanager
async def door_client(door_port: int, router_port: int) -> AsyncIterator[Call]:
    """The OpenAI door with a lean client: what the door adds, not what an SDK adds. Calls are
    counted under the router's gRPC port, for CPU per request."""
    url = f"http://127.0.0.1:{door_port}/v1/chat/completions"
    async with aiohttp_session() as session:

        async def call() -> None:
            await post_ok(session, url, DOOR_BODY, DOOR_HEADERS, must_contain=b'"content"')
            count_router_call(router_port)

        yield call


async def post_ok(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], must_contain: bytes = b""
) -> None:
    """One POST read to its end; raises unless it answers 200 with `must_contain` in the body."""
    async with session.post(url, data=body, headers=headers) as response:
        answer = await response.read()
        if response.status != 200 or must_contain not in answer:
            raise RuntimeError(f"HTTP {response.status}: {answer[:200]!r}")
