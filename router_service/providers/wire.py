"""JSON and HTTP-body helpers shared by the adapters.

Every adapter speaks JSON over HTTP and meets the same few chores at its edges: encoding the request
body (a bad value is the caller's request at fault, INVALID_REQUEST), decoding an answer that must be
a JSON object (anything else is BAD_RESPONSE, never a KeyError or TypeError), reading a tool call's
argument JSON back into an object, and reading a bounded prefix of an error body.

`WireClient` makes the one HTTP exchange every adapter needs, unary or streaming, so that a failure is
translated into a ProviderError exactly once, here at the edge: httpx failures through
`error_from_transport`, non-2xx answers through the adapter's own mapper (which redacts and refines).
A unary call on the default aiohttp transport takes its fast path (`MappedAiohttpTransport.post`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx

from router_service.domain import ToolCall
from router_service.errors import ErrorClass, ProviderError
from router_service.providers.base import bad_response, error_from_transport
from router_service.providers.http import MappedAiohttpTransport, UpstreamClient, client_timeout
from router_service.providers.limits import (
    ResponseLimits,
    bounded_stream,
    check_declared_length,
    decoded_chunks,
    read_body,
    read_prefix,
)
from router_service.providers.sse import SSEEvent, iter_sse

# Maps a non-2xx answer (status, headers, body text) to the error to raise.
HttpErrorMapper = Callable[[int, httpx.Headers, str], ProviderError]


# Targets cached per WireClient: one per URL an adapter posts to (Gemini: one per model).
_MAX_TARGETS = 256


@dataclass(frozen=True, slots=True)
class _Target:
    """One request URL, parsed once: parsing it cost 16 us per call (37 us with query params)."""

    url: httpx.URL
    text: str  # for aiohttp
    # The request headers as httpx hands them to its aiohttp transport: lower-case names, Host
    # (httpx's netloc) first, repeated names joined with ", ".
    aiohttp_headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class WireClient:
    """The shared pooled client, bound to one endpoint's request headers, error mapper and bounds
    on what an answer may be (see limits.py: an answer over them is BAD_RESPONSE)."""

    client: httpx.AsyncClient
    headers: Mapping[str, str]
    http_error: HttpErrorMapper
    limits: ResponseLimits = field(default_factory=ResponseLimits)
    _targets: dict[tuple[object, ...], _Target] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _aiohttp_timeout: aiohttp.ClientTimeout = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The client's timeouts, as the aiohttp fast path needs them (set once, in make_http_client).
        object.__setattr__(self, "_aiohttp_timeout", client_timeout(self.client.timeout))

    async def post_json(
        self, url: httpx.URL | str, content: bytes, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """One unary POST; the answer's body as a JSON object. A non-2xx answer goes to `http_error`
        with a prefix of its body, a 2xx body that is not an object, or is over the bound, is
        BAD_RESPONSE."""
        try:
            answer = await self._post(self._target(url, params), content)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc) from exc
        if isinstance(answer, bytes):  # a 2xx body, from the fast path
            return decode_object(answer, "response body")
        status, headers, body = answer
        if not 200 <= status < 300:
            raise self.http_error(status, headers, _text(headers, body))
        return decode_object(body, "response body")

    async def _post(self, target: _Target, content: bytes) -> bytes | tuple[int, httpx.Headers, bytes]:
        """The answer within the bounds: a 2xx body (fast path), or status, headers and decoded body
        (at most a prefix of an error body)."""
        transport = _fast_transport(self.client)
        if transport is not None:
            answer = await transport.post(
                target.text, target.aiohttp_headers, content, self._aiohttp_timeout, self.limits
            )
            if isinstance(answer, bytes):
                return answer
            response = answer  # raw bytes already bounded; decoded below within the same bounds
        else:
            response = await self._send(target.url, content)
        try:
            return response.status_code, response.headers, await self._read(response)
        finally:
            await response.aclose()

    async def _read(self, response: httpx.Response) -> bytes:
        if not response.is_success:
            return await read_prefix(response, self.limits.max_error_body_bytes)
        check_declared_length(response.headers, self.limits.max_response_bytes)
        return await read_body(response, self.limits.max_response_bytes)

    def _target(self, url: httpx.URL | str, params: Mapping[str, str] | None) -> _Target:
        key = (url, *params.items()) if params else (url,)
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= _MAX_TARGETS:
                self._targets.clear()
            full = httpx.URL(url, params=params) if params else httpx.URL(url)
            headers = httpx.Headers(self.headers)
            if "host" not in headers:  # as httpx.Request adds it
                headers = httpx.Headers([(b"Host", full.netloc), *headers.raw])
            target = self._targets[key] = _Target(full, str(full), dict(headers.items()))
        return target

    @contextlib.asynccontextmanager
    async def stream(
        self, url: httpx.URL | str, content: bytes, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[AsyncIterator[SSEEvent]]:
        """A streaming POST whose 2xx response's SSE events are read inside the block, within the
        stream bounds (a longer line or event, or more bytes in all, is BAD_RESPONSE). A non-2xx
        answer goes to `http_error` with a prefix of its body. httpx failures, including those raised
        while the block reads the body, become ProviderErrors; leaving the block, also by an early
        close of the caller's generator, closes the upstream response."""
        limits = self.limits
        try:
            response = await self._send(self._target(url, params).url, content)
            try:
                if not response.is_success:
                    body = await read_prefix(response, limits.max_error_body_bytes)
                    raise self.http_error(
                        response.status_code, response.headers, _text(response.headers, body)
                    )
                chunks = decoded_chunks(response, limits.max_stream_bytes, what="stream")
                yield iter_sse(bounded_stream(chunks, limits.max_stream_bytes), limits.max_stream_line_bytes)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise error_from_transport(exc) from exc

    async def _send(self, url: httpx.URL, content: bytes) -> httpx.Response:
        """The response, unread: its body is read (and the response closed) by the caller.

        On the aiohttp transport the request goes straight to it: `AsyncClient.send` adds
        redirects, cookie handling, auth flows and event hooks, none of which an LLM API call
        uses, at about 40% of the client-side CPU per request on this machine (546 vs 328 us per
        call at concurrency 32, README "Performance"). Any other transport (httpx's own, a test's
        MockTransport) goes through `send`, the public way.
        """
        # Built as-is rather than by `client.build_request`, which would add httpx's default
        # headers (user-agent, accept-encoding) that neither path has ever sent.
        request = httpx.Request(
            "POST",
            url,
            content=content,
            headers=self.headers,
            extensions={"timeout": self.client.timeout.as_dict()},
        )
        transport = _fast_transport(self.client)
        if transport is None:
            return await self.client.send(request, stream=True)
        return await transport.handle_async_request(request)


def _fast_transport(client: httpx.AsyncClient) -> MappedAiohttpTransport | None:
    """The aiohttp transport `make_http_client` built `client` with, if it did and with no proxy."""
    transport = client.upstream_transport if isinstance(client, UpstreamClient) else None
    return transport if transport is not None and transport.proxy is None else None


def _text(headers: httpx.Headers, body: bytes) -> str:
    """An error body as text, decoded as httpx decodes `Response.text` (charset, else UTF-8;
    undecodable bytes replaced)."""
    content_type = headers.get("content-type")
    return httpx.Response(
        200, headers={"content-type": content_type} if content_type else {}, content=body
    ).text


def _jsonable(value: object) -> object:
    # Only reached for what `json` cannot encode itself (lists and tuples it can): a read-only
    # Mapping becomes a dict, anything else stays an error.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


# What json.dumps(payload, default=_jsonable, allow_nan=False, ensure_ascii=False) builds for
# every call (with non-default options it makes a new encoder each time), made once.
_ENCODER = json.JSONEncoder(default=_jsonable, allow_nan=False, ensure_ascii=False)


def encode_json(payload: Mapping[str, Any]) -> bytes:
    """The request body. Tool and schema Mappings may be read-only views, which `json` cannot encode;
    a NaN, an infinity or an unencodable value is the caller's request at fault, not a crash."""
    try:
        text = _ENCODER.encode(payload)
    except (TypeError, ValueError) as exc:
        raise ProviderError(ErrorClass.INVALID_REQUEST, f"request is not valid JSON: {exc}") from exc
    return text.encode()


def decode_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """`raw` parsed as a JSON object; BAD_RESPONSE if it is not JSON (or not UTF-8) or not an object."""
    try:
        value = json.loads(raw)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise bad_response(f"{what} is not JSON") from exc
    return as_object(value, what)


def as_object(value: object, what: str) -> dict[str, Any]:
    """`value` if it is a decoded JSON object, else BAD_RESPONSE."""
    if not isinstance(value, dict):
        raise bad_response(f"{what} is not a JSON object")
    return value


def tool_arguments(call: ToolCall, where: str) -> dict[str, Any]:
    """An assistant tool call's `arguments_json` as an object, for protocols that send arguments
    as JSON rather than as a string. Blank means no arguments; anything but an object is the
    caller's request at fault (INVALID_REQUEST)."""
    if not call.arguments_json.strip():
        return {}
    try:
        value = json.loads(call.arguments_json)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ProviderError(ErrorClass.INVALID_REQUEST, f"{where}.arguments_json is not a JSON object")
    return value
