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
from router_service.providers.http import MappedAiohttpTransport, client_timeout

# Maps a non-2xx answer (status, headers, body text) to the error to raise.
HttpErrorMapper = Callable[[int, httpx.Headers, str], ProviderError]

# An error body is read only to classify the failure and quote its start; a misbehaving server must
# not make us buffer an unbounded body to learn that.
ERROR_BODY_LIMIT = 64 * 1024


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
    """The shared pooled client, bound to one endpoint's request headers and error mapper."""

    client: httpx.AsyncClient
    headers: Mapping[str, str]
    http_error: HttpErrorMapper
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
        with its whole body, a 2xx body that is not an object is BAD_RESPONSE."""
        try:
            answer = await self._post(self._target(url, params), content)
        except httpx.HTTPError as exc:
            raise error_from_transport(exc) from exc
        if isinstance(answer, bytes):  # a 2xx body, from the fast path
            return decode_object(answer, "response body")
        if not answer.is_success:
            raise self.http_error(answer.status_code, answer.headers, answer.text)
        return decode_object(answer.content, "response body")

    async def _post(self, target: _Target, content: bytes) -> bytes | httpx.Response:
        """The whole answer: see `MappedAiohttpTransport.post` for the bytes case."""
        transport = self.client._transport_for_url(target.url)  # private, see _send
        if isinstance(transport, MappedAiohttpTransport) and transport.proxy is None:
            return await transport.post(target.text, target.aiohttp_headers, content, self._aiohttp_timeout)
        response = await self._send(target.url, content)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

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
    ) -> AsyncIterator[httpx.Response]:
        """A streaming POST whose 2xx response is open inside the block. A non-2xx answer goes to
        `http_error` with at most ERROR_BODY_LIMIT bytes of its body. httpx failures, including those
        raised while the block reads the body, become ProviderErrors; leaving the block, also by an
        early close of the caller's generator, closes the upstream response."""
        try:
            response = await self._send(self._target(url, params).url, content)
            try:
                if not response.is_success:
                    body_text = await read_error_body(response)
                    raise self.http_error(response.status_code, response.headers, body_text)
                yield response
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise error_from_transport(exc) from exc

    async def _send(self, url: httpx.URL, content: bytes) -> httpx.Response:
        """Send straight through the client's transport, with the client's timeouts.

        `AsyncClient.send` adds redirects, cookie extraction, auth flows and event hooks, none of
        which an LLM API call uses, and they cost about 40% of the client-side CPU per request on this
        machine (546 vs 328 us per call at concurrency 32, README "Performance"). The transport is
        still the one the client would use for this URL (proxy mounts included).
        """
        request = httpx.Request(
            "POST",
            url,
            content=content,
            headers=self.headers,
            extensions={"timeout": self.client.timeout.as_dict()},
        )
        transport = self.client._transport_for_url(request.url)  # private, see docstring
        return await transport.handle_async_request(request)


async def read_error_body(response: httpx.Response) -> str:
    """At most ERROR_BODY_LIMIT bytes of a streamed error body, decoded leniently. A failed read
    leaves the status to go on: whatever arrived before the failure is returned."""
    body = bytearray()
    with contextlib.suppress(httpx.HTTPError):
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) >= ERROR_BODY_LIMIT:
                break
    return body[:ERROR_BODY_LIMIT].decode("utf-8", errors="replace")


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
