"""The error hierarchy.

Two families:
- `ProviderError`: one upstream attempt failed. Its `error_class` is one of a closed set, and the
  class decides what the engine does next (retry, fall back, cool down); adapters translate every
  transport or HTTP failure into exactly one of these, once, at the edge.
- `RouterError`: the request as a whole failed. The API layer maps each subclass to one gRPC status.

Standard library only: routing, resilience and the engine import this without pulling in I/O.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

if TYPE_CHECKING:
    from router_service.domain import RouteDecision


class ErrorClass(enum.Enum):
    """Closed set of upstream failure classes (mirrors router.v1.ErrorClass)."""

    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    AUTH = "auth"
    INVALID_REQUEST = "invalid_request"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    CONTENT_FILTERED = "content_filtered"
    BAD_RESPONSE = "bad_response"
    CANCELLED = "cancelled"

    @property
    def is_callers_fault(self) -> bool:
        """The same request would fail on any deployment of any model."""
        return self in _CALLERS_FAULT

    @property
    def may_fall_back(self) -> bool:
        """Another deployment or model may succeed where this one failed."""
        return self not in _CALLERS_FAULT and self is not ErrorClass.CANCELLED


_CALLERS_FAULT = frozenset({ErrorClass.INVALID_REQUEST})


class ProviderError(Exception):
    """One upstream attempt failed."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        status_code: int = 0,
        retry_after_s: float | None = None,
        blames_upstream: bool = True,
    ) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        # False when the router caused the failure (resilience/loop_stall.py): the attempt is the
        # error class's for the caller and the fallback, but says nothing about the deployment.
        self.blames_upstream = blames_upstream

    def __repr__(self) -> str:
        return f"ProviderError({self.error_class.value}, status={self.status_code}, {self.message!r})"


class RouterError(Exception):
    """The request failed as a whole.

    `status_code` is the gRPC status code name and `reason` the UPPER_SNAKE ErrorInfo reason; both
    are decided here, once, so the API status and the published error event always agree.
    """

    status_code: ClassVar[str] = "INTERNAL"
    reason: ClassVar[str] = "INTERNAL"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class InvalidRequestError(RouterError):
    """The caller's request is malformed; nothing was routed or called."""

    status_code = "INVALID_ARGUMENT"
    reason = "INVALID_REQUEST"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class UnknownModelError(RouterError):
    status_code = "NOT_FOUND"
    reason = "MODEL_NOT_FOUND"

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"unknown {kind} {name!r}")


class RequestNotFoundError(UnknownModelError):
    """Feedback named a request id this router did not serve (or no longer remembers). A kind
    of unknown resource, so it carries the same ResourceInfo (resource type "request")."""

    reason = "REQUEST_NOT_FOUND"

    def __init__(self, request_id: str) -> None:
        super().__init__("request", request_id)


class UndecodableRequestError(RouterError):
    """The request body is not a valid protobuf of the method's request type (truncated, invalid
    UTF-8 in a string field, nested deeper than protobuf's recursion limit): nothing was read."""

    status_code = "INVALID_ARGUMENT"
    reason = "INVALID_REQUEST"

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type
        super().__init__(
            f"the request body is not a valid {message_type}: truncated or malformed protobuf, "
            "invalid UTF-8 in a string field, or nested deeper than protobuf allows"
        )


class RequestIdReusedError(RouterError):
    """A caller request id came again with a different request: a retry must repeat the request
    exactly, and a new request needs a new id."""

    status_code = "INVALID_ARGUMENT"
    reason = "REQUEST_ID_REUSED"

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"request id {request_id!r} was already used for a different request; "
            "a retry must send the same request, a new request needs a new id"
        )


class NoEligibleCandidateError(RouterError):
    """Routing excluded every candidate; `exclusions` says why, per candidate. `decision`, when
    the planner gives it, is the decision with every candidate, its reason and an empty chain:
    the engine publishes it before the error."""

    status_code = "FAILED_PRECONDITION"
    reason = "NO_ELIGIBLE_CANDIDATE"

    def __init__(self, exclusions: Mapping[str, str], decision: RouteDecision | None = None) -> None:
        self.exclusions = dict(exclusions)
        self.decision = decision
        # "key: reason" per candidate, joined in C: an f-string each is most of the cost of
        # routing a request nothing can serve (50 candidates: ~10 us on a small VM).
        detail = "; ".join(map(": ".join, self.exclusions.items()))
        super().__init__(f"no candidate can serve this request ({detail})")


class ContextLengthExceededError(NoEligibleCandidateError):
    """Nothing was eligible and the request needs more tokens than the largest context window
    among the candidates: the caller must shorten it (no retry, no wait, no other policy state
    would help), so INVALID_ARGUMENT, as an upstream's own context-length refusal is."""

    status_code = "INVALID_ARGUMENT"
    reason = "CONTEXT_LENGTH_EXCEEDED"

    def __init__(
        self,
        exclusions: Mapping[str, str],
        tokens_needed: int,
        largest_window: int,
        decision: RouteDecision | None = None,
    ) -> None:
        super().__init__(exclusions, decision)
        self.tokens_needed = tokens_needed
        self.largest_window = largest_window
        self.args = (
            f"prompt too long for every candidate: ~{tokens_needed} tokens needed, the largest "
            f"context window is {largest_window}",
        )


class AllAttemptsFailedError(RouterError):
    """Every attempt in the plan failed. Carries each attempt's error, in order.

    UNAVAILABLE (retry later), except when every candidate said the prompt is too long: that is
    the caller's to fix, so INVALID_ARGUMENT / CONTEXT_LENGTH_EXCEEDED (see `api.status`).
    """

    status_code = "UNAVAILABLE"
    reason = "ALL_ATTEMPTS_FAILED"

    def __init__(self, failures: Sequence[tuple[str, ProviderError]]) -> None:
        self.failures = tuple(failures)
        detail = "; ".join(f"{t}: {e.error_class.value}" for t, e in self.failures)
        super().__init__(f"all upstream attempts failed ({detail})")

    @property
    def prompt_too_long(self) -> bool:
        """Every candidate said the prompt does not fit: the caller must shorten it."""
        return bool(self.failures) and all(
            e.error_class is ErrorClass.CONTEXT_LENGTH_EXCEEDED for _, e in self.failures
        )

    @property
    def last(self) -> ProviderError | None:
        return self.failures[-1][1] if self.failures else None


class UpstreamRejectedError(RouterError):
    """The upstream rejected the request itself (a caller's error): not retried anywhere."""

    status_code = "INVALID_ARGUMENT"
    reason = "UPSTREAM_REJECTED_REQUEST"

    def __init__(self, target: str, error: ProviderError) -> None:
        self.target = target
        self.error = error
        super().__init__(f"{target} rejected the request: {error.message}")


class DeadlineExceededError(RouterError):
    status_code = "DEADLINE_EXCEEDED"
    reason = "DEADLINE_EXCEEDED"


class StreamInterruptedError(RouterError):
    """The upstream failed after text was already sent to the caller: no fallback is possible."""

    status_code = "UNAVAILABLE"
    reason = "STREAM_INTERRUPTED"

    def __init__(self, target: str, error: ProviderError, delivered_chars: int) -> None:
        self.target = target
        self.error = error
        self.delivered_chars = delivered_chars
        super().__init__(
            f"{target} failed mid-stream ({error.error_class.value}) after "
            f"{delivered_chars} characters were delivered; the answer is incomplete"
        )


class UnauthenticatedError(RouterError):
    """No valid credential: a missing, malformed, unknown, disabled or expired key."""

    status_code = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"


class KeyStoreUnavailableError(RouterError):
    """The shared key store cannot be reached and the key is not in the local cache: callers
    retry (UNAVAILABLE), nobody is let in unverified."""

    status_code = "UNAVAILABLE"
    reason = "KEY_STORE_UNAVAILABLE"


class ShuttingDownError(RouterError):
    """The router is stopping: it finishes the calls it started and starts no more. UNAVAILABLE
    with a retry delay: the call never began, so another instance (or this one, restarted) can
    run it as if it were new."""

    status_code = "UNAVAILABLE"
    reason = "SHUTTING_DOWN"

    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__("the router is shutting down; retry the call")


class PermissionDeniedError(RouterError):
    """A valid caller asked for something its identity does not allow. `scope` or `resource`
    names what was missing, never whether another key could do it. `owner` says whose the
    resource is in words that name nobody ("another key": feedback for someone else's request)."""

    status_code = "PERMISSION_DENIED"
    reason = "PERMISSION_DENIED"

    def __init__(
        self, message: str, *, scope: str = "", resource_kind: str = "", resource: str = "", owner: str = ""
    ) -> None:
        self.scope = scope
        self.resource_kind = resource_kind
        self.resource = resource
        self.owner = owner
        super().__init__(message)


def status_of(error: BaseException) -> tuple[str, str]:
    """(gRPC status code name, ErrorInfo reason) for any failure: the one mapping the API status
    and the published error event share."""
    if isinstance(error, AllAttemptsFailedError) and error.prompt_too_long:
        return "INVALID_ARGUMENT", "CONTEXT_LENGTH_EXCEEDED"
    if isinstance(error, RouterError):
        return error.status_code, error.reason
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        return "CANCELLED", "CANCELLED"
    return "INTERNAL", "INTERNAL"
