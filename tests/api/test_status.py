"""Router errors map to precise gRPC codes with ErrorInfo and the right detail types."""

from __future__ import annotations

import base64

import grpc
import pytest
from google.rpc import error_details_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.api.status import DOMAIN, MAX_FIELD_VIOLATIONS, to_rpc_error
from router_service.errors import (
    AllAttemptsFailedError,
    DeadlineExceededError,
    ErrorClass,
    FieldViolation,
    InvalidRequestError,
    NoEligibleCandidateError,
    ProviderError,
    StreamInterruptedError,
    UndecodableRequestError,
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


# --- bounded: the whole status fits a default client's 8 KiB trailer, whatever the caller sent ---

_TRAILER_BUDGET = 6 * 1024  # well under the 8 KiB default, leaving room for HPACK and other entries


def trailer_bytes(rpc: object) -> int:
    """grpc-status-details-bin (base64) plus grpc-message (percent-encoded), as on the wire."""
    status_bytes = rpc.status.SerializeToString()  # type: ignore[attr-defined]
    message = rpc.message.encode()  # type: ignore[attr-defined]
    encoded = sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message)
    return len(base64.b64encode(status_bytes)) + encoded


def bad_request(status: object) -> error_details_pb2.BadRequest:
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)  # type: ignore[attr-defined]
    return bad


def test_a_thousand_violations_give_the_first_ones_and_a_count() -> None:
    violations = [
        FieldViolation(f"chat.messages[{i}].role", "must be one of ROLE_SYSTEM, ...") for i in range(1000)
    ]
    rpc = to_rpc_error(InvalidRequestError(violations), "req-1")

    bad = bad_request(rpc.status)
    kept = len(bad.field_violations)
    assert 0 < kept <= MAX_FIELD_VIOLATIONS
    assert [v.field for v in bad.field_violations] == [v.field for v in violations[:kept]]
    info = error_info(rpc.status)
    assert info.metadata["omitted_field_violations"] == str(1000 - kept)
    assert info.metadata["request_id"] == "req-1"
    assert rpc.message.startswith("chat.messages[0].role: ") and rpc.message.endswith(
        f"(and {1000 - kept} more)"
    )
    assert trailer_bytes(rpc) < _TRAILER_BUDGET


def test_few_violations_are_all_listed_without_a_count() -> None:
    rpc = to_rpc_error(InvalidRequestError([FieldViolation("a", "x"), FieldViolation("b", "y")]), "r")
    assert [v.field for v in bad_request(rpc.status).field_violations] == ["a", "b"]
    assert "omitted_field_violations" not in error_info(rpc.status).metadata
    assert rpc.message == "a: x; b: y"


@pytest.mark.parametrize(
    "error",
    [
        UnknownModelError("model", "\u00e9" * 1_000_000),
        NoEligibleCandidateError({f"p{i}/" + "m" * 300: "r" * 1000 for i in range(200)}),
        AllAttemptsFailedError(
            [(f"p{i}/m" + "\U0001f600" * 100, ProviderError(ErrorClass.OVERLOADED, "x")) for i in range(100)]
        ),
        InvalidRequestError([FieldViolation("chat.tags['" + "\u202e" * 100_000 + "']", "d" * 100_000)]),
    ],
)
def test_huge_or_unicode_content_stays_bounded(error: Exception) -> None:
    rpc = to_rpc_error(error, "\u00e9" * 100_000)  # e.g. an invalid caller request id
    assert trailer_bytes(rpc) < _TRAILER_BUDGET
    assert error_info(rpc.status).domain == DOMAIN  # ErrorInfo is never the part dropped


@settings(max_examples=200, deadline=None)
@given(
    violations=st.lists(
        st.builds(FieldViolation, st.text(max_size=300), st.text(max_size=300)), min_size=1, max_size=300
    ),
    request_id=st.text(max_size=200),
)
def test_any_violations_fit_the_trailer(violations: list[FieldViolation], request_id: str) -> None:
    rpc = to_rpc_error(InvalidRequestError(violations), request_id)
    assert trailer_bytes(rpc) < _TRAILER_BUDGET
    bad = bad_request(rpc.status)
    omitted = len(violations) - len(bad.field_violations)
    assert error_info(rpc.status).metadata.get("omitted_field_violations", "0") == str(omitted)


def test_an_undecodable_body_is_invalid_argument_naming_the_type() -> None:
    rpc = to_rpc_error(UndecodableRequestError("router.v1.CompleteRequest"), "r")
    info = error_info(rpc.status)
    assert rpc.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.reason, info.domain, info.metadata["message_type"]) == (
        "INVALID_REQUEST",
        DOMAIN,
        "router.v1.CompleteRequest",
    )
    assert "router.v1.CompleteRequest" in rpc.message and "class" not in rpc.message
