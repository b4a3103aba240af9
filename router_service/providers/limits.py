"""Bounds on what one upstream attempt may send back, and the bounded body readers.

An upstream is not trusted to be small: a broken or hostile server (or a proxy's error page) can send
hundreds of megabytes, and reading that whole grew the router from 69 to 650 MB. Every body is read
against a bound instead, and an answer over it is a BAD_RESPONSE attempt (the engine falls back),
never an unbounded read:

- a 2xx unary body: at most `max_response_bytes` after decoding. A Content-Length over the bound fails
  before anything is read; a chunked body stops being read at the bound.
- a stream: each SSE line and each event's data at most `max_stream_line_bytes` (enforced by the
  parser), the whole stream at most `max_stream_bytes`.
- a non-2xx body: only a prefix of `max_error_body_bytes` is read (it is only classified and
  summarised); the rest is never read and the connection is dropped.

Compressed bodies are decoded a few KiB of input at a time, so a small compression bomb cannot expand
to more than about a thousand times that in one step before the bound is checked.

Defaults: the largest real completion is a 128k-output-token answer. At ~4 bytes per token plus JSON
escaping, that is ~1-2 MB of text; 16 MiB leaves room for tool arguments, logprobs and verbose
providers. A stream repeats the envelope on every chunk (~150-600 bytes per token), so 128k tokens is
at most ~80 MB: the stream bound is 128 MiB. No real SSE line is near 1 MiB (one chunk of one token).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

import httpx

from router_service.errors import ErrorClass, ProviderError

DEFAULT_MAX_RESPONSE_BYTES = 16 << 20
DEFAULT_MAX_STREAM_LINE_BYTES = 1 << 20
DEFAULT_MAX_STREAM_BYTES = 128 << 20
# An error body is read only to classify the failure and quote a sanitised summary of its start.
DEFAULT_MAX_ERROR_BODY_BYTES = 16 << 10

# Compressed input decoded in one step. Deflate expands at most ~1032x, so one step yields at most
# ~4 MiB before the bound is checked again.
_DECODE_SLICE = 4096


@dataclass(frozen=True, slots=True)
class ResponseLimits:
    """Per-attempt bounds on an upstream's answer (config `http:`, see config/example.yaml)."""

    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_stream_line_bytes: int = DEFAULT_MAX_STREAM_LINE_BYTES
    max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES
    max_error_body_bytes: int = DEFAULT_MAX_ERROR_BODY_BYTES


def too_large(what: str, limit: int) -> ProviderError:
    return ProviderError(ErrorClass.BAD_RESPONSE, f"upstream {what} larger than {limit} bytes")


def declared_length(headers: httpx.Headers) -> int | None:
    """The Content-Length header as a number, or None when absent or garbage."""
    value = headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def check_declared_length(headers: httpx.Headers, limit: int) -> None:
    """Fail before reading when the answer announces a body over the bound."""
    length = declared_length(headers)
    if length is not None and length > limit:
        raise too_large("response body", limit)


async def read_body(response: httpx.Response, limit: int) -> bytes:
    """A 2xx body, decoded; more than `limit` bytes (raw or decoded) is BAD_RESPONSE."""
    body = bytearray()
    async for chunk in decoded_chunks(response, limit):
        body += chunk
        if len(body) > limit:
            raise too_large("response body", limit)
    return bytes(body)


async def read_prefix(response: httpx.Response, limit: int) -> bytes:
    """At most `limit` bytes of a (decoded) error body. A failed read or decode keeps what arrived:
    the status is what matters, the body only refines it."""
    body = bytearray()
    try:
        async for chunk in decoded_chunks(response, limit, strict=False):
            body += chunk
            if len(body) >= limit:
                break
    except httpx.HTTPError:
        pass
    return bytes(body[:limit])


async def bounded_stream(chunks: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """`chunks` as they come, until they add up to more than `limit` bytes: then BAD_RESPONSE."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise too_large("stream", limit)
        yield chunk


def decoded_chunks(
    response: httpx.Response, raw_limit: int, *, strict: bool = True, what: str = "response body"
) -> AsyncIterator[bytes]:
    """The body decoded as httpx decodes it (Content-Encoding), reading at most `raw_limit` raw bytes
    (more is BAD_RESPONSE when `strict`, else the rest is not read). A compressed body is decoded a
    slice at a time, so what one step yields stays small."""
    try:
        content = response.content  # a response built over bytes (MockTransport) is read already
    except httpx.ResponseNotRead:
        pass
    else:
        return _RawSlices(_one(content), raw_limit, strict, what, 0).__aiter__()
    encoded = bool(response.headers.get("content-encoding"))
    raw = _RawSlices(response.aiter_raw(), raw_limit, strict, what, _DECODE_SLICE if encoded else 0)
    if not encoded:
        return raw.__aiter__()
    # A shadow response over the sliced raw bytes: httpx's own decoders, fed in small steps.
    shadow = httpx.Response(response.status_code, headers=response.headers, stream=raw)
    return shadow.aiter_bytes()


async def _one(content: bytes) -> AsyncIterator[bytes]:
    yield content


class _RawSlices(httpx.AsyncByteStream):
    """Raw body chunks, cut at `limit` (or failing past it when `strict`), and re-sliced into pieces
    of `slice_size` bytes when that is not 0."""

    def __init__(
        self, chunks: AsyncIterator[bytes], limit: int, strict: bool, what: str, slice_size: int
    ) -> None:
        self._chunks = chunks
        self._limit = limit
        self._strict = strict
        self._what = what
        self._slice = slice_size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self._chunks:
            total += len(chunk)
            if total > self._limit:
                if self._strict:
                    raise too_large(self._what, self._limit)
                chunk = chunk[: len(chunk) - (total - self._limit)]
            if not self._slice:
                yield chunk
            else:
                for start in range(0, len(chunk), self._slice):
                    yield chunk[start : start + self._slice]
            if total >= self._limit and not self._strict:
                return
