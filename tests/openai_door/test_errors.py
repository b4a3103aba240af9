"""The HTTP status, OpenAI error shape and retry headers each router error gets. Pure."""

from __future__ import annotations

from router_service.errors import (
    AllAttemptsFailedError,
    ErrorClass,
    FieldViolation,
    InvalidRequestError,
    KeyStoreUnavailableError,
    PermissionDeniedError,
    ProviderError,
    UnauthenticatedError,
    UnknownModelError,
)
from router_service.limits.errors import LimitExceededError, RequestCostCeilingError
from router_service.limits.model import Level, Metric
from router_service.openai_door.errors import to_http_error


def limit(cls: type[LimitExceededError], retry_after_s: float | None) -> LimitExceededError:
    return cls(
        level=Level.TEAM, entity="team:search", metric=Metric.REQUESTS, limit=10, period="minute",
        retry_after_s=retry_after_s, asked=1, current=10,
    )  # fmt: skip


def test_invalid_request_is_400_naming_the_first_field() -> None:
    exc = InvalidRequestError([FieldViolation("temperature", "must be in [0, 2]"), FieldViolation("n", "x")])
    error = to_http_error(exc, "rid")
    assert error.status == 400
    assert error.body["error"] == {
        "message": "temperature: must be in [0, 2]; n: x",
        "type": "invalid_request_error",
        "code": "invalid_request",
        "param": "temperature",
        "request_id": "rid",
    }
    assert error.headers == {"x-router-request-id": "rid"}


def test_rate_limit_is_429_with_the_window_reset() -> None:
    error = to_http_error(limit(LimitExceededError, 1.25), "rid")
    assert error.status == 429
    assert (error.headers["retry-after-ms"], error.headers["retry-after"]) == ("1250", "2")
    assert error.body["error"]["code"] == "rate_limited"


def test_a_concurrency_limit_says_retry_in_a_second_as_grpc_does() -> None:
    """No window (a slot frees any moment): the limits' default second, as gRPC's RetryInfo; never
    x-should-retry false, which would make the SDKs give up on a limit that frees at once."""
    error = to_http_error(limit(LimitExceededError, None), "rid")
    assert error.status == 429 and "x-should-retry" not in error.headers
    assert (error.headers["retry-after-ms"], error.headers["retry-after"]) == ("1000", "1")


def test_a_request_over_its_cost_ceiling_tells_the_sdk_not_to_retry() -> None:
    error = to_http_error(limit(RequestCostCeilingError, None), "rid")
    assert error.status == 429 and error.headers["x-should-retry"] == "false"
    assert "retry-after" not in error.headers
    assert error.body["error"]["code"] == "request_cost_ceiling"


def test_upstream_exhaustion_is_503_with_the_shortest_upstream_delay() -> None:
    failures = [
        ("a/m", ProviderError(ErrorClass.RATE_LIMITED, "slow down", retry_after_s=0.3)),
        ("b/m", ProviderError(ErrorClass.OVERLOADED, "busy", retry_after_s=2.0)),
    ]
    error = to_http_error(AllAttemptsFailedError(failures), "rid")
    assert error.status == 503 and error.headers["retry-after-ms"] == "300"
    store = to_http_error(KeyStoreUnavailableError("key store down"), "rid")
    assert store.status == 503 and store.headers["retry-after-ms"] == "1000"


def test_prompt_too_long_everywhere_is_the_callers_400() -> None:
    failures = [("a/m", ProviderError(ErrorClass.CONTEXT_LENGTH_EXCEEDED, "too long"))]
    error = to_http_error(AllAttemptsFailedError(failures), "rid")
    assert error.status == 400 and error.body["error"]["code"] == "context_length_exceeded"


def test_identity_and_resources() -> None:
    assert to_http_error(UnauthenticatedError("no key"), "r").status == 401
    denied = to_http_error(PermissionDeniedError("no", resource_kind="alias", resource="fast"), "r")
    assert (denied.status, denied.body["error"]["param"]) == (403, "model")
    policy = to_http_error(UnknownModelError("policy", "nope"), "r")
    assert (policy.status, policy.body["error"]["param"]) == (404, "router.policy")


def test_anything_unexpected_is_500_and_says_nothing_more() -> None:
    error = to_http_error(RuntimeError("secret detail"), "rid")
    assert error.status == 500 and error.body["error"]["message"] == "internal error"
