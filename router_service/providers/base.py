"""What every provider adapter implements, and the error mapping they share.

An adapter translates the internal model (`router_service.domain`) to one wire protocol and back.
It is handed a shared, pooled `httpx.AsyncClient` and its endpoint (URL, credentials) rather than
creating them, so connection pools and transports are chosen once, in `app.py`.

Timeouts: the engine bounds each attempt with `asyncio.timeout` inside the caller's deadline; the
client's own httpx timeouts (connect, read) are a backstop. Cancelling the awaiting task closes the
upstream HTTP response, which is how a caller's cancellation reaches the provider.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import math
import time
from dataclasses import dataclass, field
from typing import AsyncGenerator, Mapping, Protocol

import httpx

from router_service.domain import ChatRequest, ChatResult, StreamEvent
from router_service.errors import ErrorClass, ProviderError
from router_service.providers.limits import ResponseLimits
from router_service.providers.usage import ModelLimits


@dataclass(frozen=True, slots=True)
class ProviderEndpoint:
    """Where and how to reach one configured provider."""

    name: str  # config key, e.g. "openai" or "sim-fast"
    kind: str  # wire protocol: "openai", "anthropic", "gemini"
    base_url: str
    api_key: str = field(default="", repr=False)  # never printed
    headers: Mapping[str, str] = field(default_factory=dict)
    # Provider-specific options (e.g. anthropic "version"); adapters document what they read.
    options: Mapping[str, str] = field(default_factory=dict)
    # Bounds on an answer's size (config `http:`).
    limits: ResponseLimits = field(default_factory=ResponseLimits)
    # The catalog's limits of the models served here, by upstream model name: what makes a
    # reported token usage plausible (usage.py). A model not listed gets the hard ceilings.
    models: Mapping[str, ModelLimits] = field(default_factory=dict)


class ProviderAdapter(Protocol):
    endpoint: ProviderEndpoint

    async def complete(self, request: ChatRequest, upstream_model: str) -> ChatResult:
        """One unary call. Raises ProviderError on any failure."""
        ...

    def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]:
        """One streaming call: deltas, then exactly one StreamDone. Raises ProviderError on any
        failure, including a stream that ends without the protocol's terminal event."""
        ...


# --- shared error mapping ------------------------------------------------------------------

_STATUS_CLASSES: dict[int, ErrorClass] = {
    400: ErrorClass.INVALID_REQUEST,
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    # Unknown model or endpoint: the request is fine, our deployment config is wrong. Classed with
    # auth failures ("this deployment cannot serve anything") so routing falls back and marks it bad,
    # instead of blaming the caller.
    404: ErrorClass.AUTH,
    408: ErrorClass.TIMEOUT,
    409: ErrorClass.OVERLOADED,
    413: ErrorClass.CONTEXT_LENGTH_EXCEEDED,
    422: ErrorClass.INVALID_REQUEST,
    429: ErrorClass.RATE_LIMITED,
}

_CONTEXT_LENGTH_MARKERS = (
    "context_length_exceeded",
    "context length",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "exceeds the maximum number of tokens",
    "input token count",
)
# Specific phrases only: a bare "safety" would also match e.g. an invalid `safety_settings` value.
_CONTENT_FILTER_MARKERS = (
    "content_filter",
    "content management policy",
    "content_policy",
    "responsibleaipolicy",
)


def classify_status(status: int, body_text: str) -> ErrorClass:
    """Error class for a non-2xx HTTP answer; the body refines 400s (context length, filters)."""
    lowered = body_text.lower()
    if status in (400, 413, 422):
        if any(marker in lowered for marker in _CONTEXT_LENGTH_MARKERS):
            return ErrorClass.CONTEXT_LENGTH_EXCEEDED
        if any(marker in lowered for marker in _CONTENT_FILTER_MARKERS):
            return ErrorClass.CONTENT_FILTERED
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if status >= 500:
        return ErrorClass.OVERLOADED
    return ErrorClass.BAD_RESPONSE


def parse_retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or HTTP date), or None."""
    ms = _finite_number(headers.get("retry-after-ms"))
    if ms is not None:
        return max(0.0, ms / 1000.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite_number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # "-0000" parses to a naive datetime; HTTP dates are always UTC, never the server's local time.
        when = when.replace(tzinfo=datetime.UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _finite_number(text: str | None) -> float | None:
    """float(text), or None for absent, garbage, "inf" or "nan" (which would mean wait forever/never)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def error_from_response(status: int, headers: httpx.Headers, body_text: str) -> ProviderError:
    """ProviderError for a non-2xx response. The body is never quoted verbatim (it can be large, may
    echo the prompt, and some upstreams quote the rejected credential): the message keeps a short
    summary, the provider's error type/code and the start of its message. Adapters scrub configured
    secrets and secret shapes from it on the way out (boundary.py)."""
    return ProviderError(
        classify_status(status, body_text),
        f"HTTP {status}: {error_summary(body_text)}",
        status_code=status,
        retry_after_s=parse_retry_after(headers),
    )


# Summary sizes: a provider error type or code is short; the message only has to say what went wrong.
_LABEL_CHARS = 64
_MESSAGE_CHARS = 200


def error_summary(body_text: str) -> str:
    """`[type/code] message` from the error JSON the providers send (OpenAI `{"error": {"message",
    "type", "code"}}`, Anthropic `{"type": "error", "error": {"type", "message"}}`, Google
    `{"error": {"code", "status", "message"}}`), else the start of the text; control characters and
    runs of whitespace become one space, every part is cut short."""
    try:
        value = json.loads(body_text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        return _one_line(body_text, _MESSAGE_CHARS) or "(no message)"
    error = value.get("error")
    details = error if isinstance(error, dict) else value
    labels = [
        _one_line(str(label), _LABEL_CHARS)
        for key in ("type", "code", "status")
        if (label := details.get(key)) is not None and not isinstance(label, (dict, list))
    ]
    message = details.get("message")
    if message is None and isinstance(error, str):
        message = error
    text = _one_line(message if isinstance(message, str) else "", _MESSAGE_CHARS)
    prefix = f"[{'/'.join(labels)}] " if labels else ""
    return (prefix + text).strip() or "(no message)"


def _one_line(text: str, limit: int) -> str:
    cut = text[: limit * 2]  # before the rewrite: bounded work on any body
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in cut).split())
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


def error_from_transport(exc: httpx.HTTPError) -> ProviderError:
    """ProviderError for an httpx transport failure (no HTTP status)."""
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(ErrorClass.TIMEOUT, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)):
        return ProviderError(ErrorClass.CONNECTION, f"{type(exc).__name__}: {exc}")
    return ProviderError(ErrorClass.CONNECTION, f"{type(exc).__name__}: {exc}")


def bad_response(what: str) -> ProviderError:
    return ProviderError(ErrorClass.BAD_RESPONSE, f"malformed upstream response: {what}")
