"""Router errors map to precise gRPC codes with ErrorInfo and the right detail types."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from router_service.api.status import DOMAIN, to_rpc_error
from router_service.errors import (
    AllAttemptsFailedError,
    DeadlineExceededError,
    ErrorClass,
    FieldViolation,
    InvalidRequestError,
    NoEligibleCandidateError,
    ProviderError,
    StreamInterruptedError,
    UnknownModelError,
    UpstreamRejectedError,
)


def detail_types(status: object) -> list[str]:
    return [d.TypeName() for d in status.details]  # type: ignore[attr-defined]


def error_info(status: object) -> error_details_pb2.ErrorInfo:
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)  # type: ignore[attr-defined]
    return info


@pytest.mark.parametrize(
    ("error", "code", "reason", "extra_detail"),
    [
        (
            InvalidRequestError([FieldViolation("chat.messages", "required")]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_REQUEST",
            "google.rpc.BadRequest",
        ),
        (
            UnknownModelError("model", "x"),
            grpc.StatusCode.NOT_FOUND,
            "MODEL_NOT_FOUND",
            "google.rpc.ResourceInfo",
        ),
        (
            NoEligibleCandidateError({"p/m": "in cooldown"}),
            grpc.StatusCode.FAILED_PRECONDITION,
            "NO_ELIGIBLE_CANDIDATE",
            None,
        ),
        (
            AllAttemptsFailedError([("p/m", ProviderError(ErrorClass.OVERLOADED, "500"))]),
            grpc.StatusCode.UNAVAILABLE,
            "ALL_ATTEMPTS_FAILED",
            "google.rpc.RetryInfo",
        ),
        (
            AllAttemptsFailedError([("p/m", ProviderError(ErrorClass.CONTEXT_LENGTH_EXCEEDED, "too long"))]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "CONTEXT_LENGTH_EXCEEDED",
            None,
        ),
        (
            UpstreamRejectedError("p/m", ProviderError(ErrorClass.INVALID_REQUEST, "bad")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "UPSTREAM_REJECTED_REQUEST",
            None,
        ),
        (
            StreamInterruptedError("p/m", ProviderError(ErrorClass.CONNECTION, "cut"), 12),
            grpc.StatusCode.UNAVAILABLE,
            "STREAM_INTERRUPTED",
            None,
        ),
        (DeadlineExceededError("late"), grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", None),
        (RuntimeError("secret internals"), grpc.StatusCode.INTERNAL, "INTERNAL", None),
    ],
)
def test_status_mapping(
    error: Exception, code: grpc.StatusCode, reason: str, extra_detail: str | None
) -> None:
    rpc = to_rpc_error(error, "req-9")

    assert rpc.code == code
    info = error_info(rpc.status)
    assert (info.reason, info.domain, info.metadata["request_id"]) == (reason, DOMAIN, "req-9")
    types = detail_types(rpc.status)
    assert types[0] == "google.rpc.ErrorInfo"
    assert len(types) == len(set(types))  # each detail type at most once (AIP-193)
    if extra_detail:
        assert extra_detail in types


def test_unexpected_errors_do_not_leak_their_message() -> None:
    assert "secret" not in to_rpc_error(RuntimeError("secret internals"), "r").message


def test_retry_info_uses_the_shortest_retry_after() -> None:
    failures = [
        ("a/m", ProviderError(ErrorClass.RATE_LIMITED, "429", retry_after_s=9.5)),
        ("b/m", ProviderError(ErrorClass.RATE_LIMITED, "429", retry_after_s=2.25)),
    ]
    status = to_rpc_error(AllAttemptsFailedError(failures), "r").status
    retry = error_details_pb2.RetryInfo()
    next(d for d in status.details if d.Is(retry.DESCRIPTOR)).Unpack(retry)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (2, 250_000_000)
