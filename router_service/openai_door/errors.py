"""One table from router errors to OpenAI-shaped HTTP errors.

The status comes from the same place as the gRPC status (`errors.status_of`: one decision, so the
HTTP answer, the gRPC answer and the published error event agree), translated by one table to the
HTTP status the official SDKs act on: they retry 408, 409, 429 and 5xx (honouring `retry-after-ms`
and `Retry-After` up to 60 s, and `x-should-retry` above all) and raise the rest at once. So:

- bad input 400 with `param` naming the first field at fault (every violation in `message`);
- no or bad key 401, a key not allowed 403, an unknown model, alias or policy 404;
- quota or rate limit 429 with the window's reset as Retry-After, a concurrency limit's with the
  limits' default second (a slot frees any moment), as gRPC's RetryInfo says; a request over a
  budget's per-request ceiling `x-should-retry: false` (only a smaller request helps; gRPC sends no
  RetryInfo either);
- every upstream failed, or a shared store unreachable, 503 with Retry-After (the shortest delay an
  upstream asked for), deadline 504; anything unexpected 500 with a generic message.

Body: `{"error": {"message", "type", "code", "param"}}` plus the router's request id, which is also
in the `x-router-request-id` header.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from router_service.errors import (
    AllAttemptsFailedError,
    InvalidRequestError,
    PermissionDeniedError,
    RouterError,
    UnknownModelError,
    status_of,
)
from router_service.limits.errors import DEFAULT_RETRY_S as LIMIT_RETRY_S
from router_service.limits.errors import LimitExceededError, RequestCostCeilingError

DEFAULT_RETRY_DELAY_S = 1.0
MAX_MESSAGE_CHARS = 2048

# gRPC code name -> (HTTP status, OpenAI error type)
_HTTP: Mapping[str, tuple[int, str]] = {
    "INVALID_ARGUMENT": (400, "invalid_request_error"),
    "FAILED_PRECONDITION": (400, "invalid_request_error"),
    "OUT_OF_RANGE": (400, "invalid_request_error"),
    "UNAUTHENTICATED": (401, "authentication_error"),
    "PERMISSION_DENIED": (403, "permission_error"),
    "NOT_FOUND": (404, "not_found_error"),
    "ALREADY_EXISTS": (409, "conflict_error"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error"),
    "CANCELLED": (499, "cancelled"),
    "UNIMPLEMENTED": (501, "api_error"),
    "UNAVAILABLE": (503, "api_error"),
    "DEADLINE_EXCEEDED": (504, "timeout_error"),
}
_INTERNAL = (500, "api_error")
# Which request field an unknown or refused resource was named by.
_PARAM_OF_KIND = {"model": "model", "alias": "model", "policy": "router.policy"}


@dataclass(frozen=True, slots=True)
class HttpError:
    status: int
    body: dict[str, object]  # {"error": {...}}
    headers: dict[str, str]


def to_http_error(exc: BaseException, request_id: str) -> HttpError:
    code, reason = status_of(exc)
    status, kind = _HTTP.get(code, _INTERNAL)
    message = str(exc) if isinstance(exc, RouterError) else "internal error"
    error: dict[str, object] = {
        "message": _clip(message),
        "type": kind,
        "code": reason.lower(),
        "param": _param(exc),
        "request_id": request_id,
    }
    headers = {"x-router-request-id": request_id}
    if status in (429, 503):
        delay = _retry_after_s(exc)
        if delay is None:
            headers["x-should-retry"] = "false"
        else:
            headers["retry-after-ms"] = str(max(1, round(delay * 1000)))
            headers["retry-after"] = str(max(1, math.ceil(delay)))
    return HttpError(status=status, body={"error": error}, headers=headers)


def _param(exc: BaseException) -> str | None:
    if isinstance(exc, InvalidRequestError) and exc.violations:
        return exc.violations[0].field
    if isinstance(exc, UnknownModelError):
        return _PARAM_OF_KIND.get(exc.kind)
    if isinstance(exc, PermissionDeniedError) and exc.resource_kind:
        return _PARAM_OF_KIND.get(exc.resource_kind)
    return None


def _retry_after_s(exc: BaseException) -> float | None:
    """When a retry may succeed: the shortest delay an upstream asked for, the limit window's reset
    (a concurrency limit has none: the limits' default), None when no retry can (a request over a
    per-request cost ceiling), else a default second. The same delays as gRPC's RetryInfo
    (limits/rpc_details.py)."""
    if isinstance(exc, AllAttemptsFailedError):
        delays = [e.retry_after_s for _, e in exc.failures if e.retry_after_s is not None]
        return min(delays) if delays else DEFAULT_RETRY_DELAY_S
    if isinstance(exc, RequestCostCeilingError):
        return None
    if isinstance(exc, LimitExceededError):
        return exc.retry_after_s if exc.retry_after_s is not None else LIMIT_RETRY_S
    if hasattr(exc, "retry_after_s"):
        delay = exc.retry_after_s
        return float(delay) if isinstance(delay, (int, float)) else None
    return DEFAULT_RETRY_DELAY_S


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."
