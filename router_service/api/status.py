"""One table from router errors to gRPC statuses with rich details (google.rpc.Status).

Every error carries an ErrorInfo (domain DOMAIN, an UPPER_SNAKE reason) and at most one of each
detail type (AIP-193). Only our own error messages go on the wire; anything unexpected becomes
INTERNAL with a generic message and is logged server-side with the request id.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from router_service.errors import (
    AllAttemptsFailedError,
    DeadlineExceededError,
    ErrorClass,
    InvalidRequestError,
    NoEligibleCandidateError,
    RouterError,
    StreamInterruptedError,
    UnknownModelError,
    UpstreamRejectedError,
)

DOMAIN = "llmrouter.router.v1"
DEFAULT_RETRY_DELAY_S = 1.0
_MAX_METADATA_VALUE = 512


@dataclass(frozen=True, slots=True)
class RpcError:
    code: grpc.StatusCode
    message: str
    status: status_pb2.Status  # goes in grpc-status-details-bin


def to_rpc_error(exc: BaseException, request_id: str) -> RpcError:
    if isinstance(exc, InvalidRequestError):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in exc.violations
            ]
        )
        return _build(grpc.StatusCode.INVALID_ARGUMENT, exc, request_id, {}, bad)
    if isinstance(exc, UnknownModelError):
        info = error_details_pb2.ResourceInfo(resource_type=exc.kind, resource_name=exc.name)
        return _build(grpc.StatusCode.NOT_FOUND, exc, request_id, {"kind": exc.kind, "name": exc.name}, info)
    if isinstance(exc, NoEligibleCandidateError):
        meta = {f"excluded:{k}": v for k, v in list(exc.exclusions.items())[:16]}
        return _build(grpc.StatusCode.FAILED_PRECONDITION, exc, request_id, meta)
    if isinstance(exc, AllAttemptsFailedError):
        return _all_failed(exc, request_id)
    if isinstance(exc, UpstreamRejectedError):
        meta = {"target": exc.target, "error_class": exc.error.error_class.value}
        return _build(grpc.StatusCode.INVALID_ARGUMENT, exc, request_id, meta)
    if isinstance(exc, StreamInterruptedError):
        meta = {
            "target": exc.target,
            "error_class": exc.error.error_class.value,
            "delivered_chars": str(exc.delivered_chars),
        }
        return _build(grpc.StatusCode.UNAVAILABLE, exc, request_id, meta)
    if isinstance(exc, DeadlineExceededError):
        return _build(grpc.StatusCode.DEADLINE_EXCEEDED, exc, request_id, {})
    return _build(grpc.StatusCode.INTERNAL, RouterError("internal error"), request_id, {})


def _all_failed(exc: AllAttemptsFailedError, request_id: str) -> RpcError:
    meta = {f"attempt{i}:{target}": e.error_class.value for i, (target, e) in enumerate(exc.failures)}
    classes = {e.error_class for _, e in exc.failures}
    if classes == {ErrorClass.CONTEXT_LENGTH_EXCEEDED}:
        return _build(
            grpc.StatusCode.INVALID_ARGUMENT, exc, request_id, meta, reason="CONTEXT_LENGTH_EXCEEDED"
        )
    delays = [e.retry_after_s for _, e in exc.failures if e.retry_after_s is not None]
    delay = min(delays) if delays else DEFAULT_RETRY_DELAY_S
    retry = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=int(delay), nanos=int(delay % 1 * 1e9))
    )
    return _build(grpc.StatusCode.UNAVAILABLE, exc, request_id, meta, retry)


def _build(
    code: grpc.StatusCode,
    exc: RouterError,
    request_id: str,
    metadata: dict[str, str],
    *details: object,
    reason: str | None = None,
) -> RpcError:
    meta = {k: v[:_MAX_METADATA_VALUE] for k, v in metadata.items()}
    if request_id:
        meta["request_id"] = request_id
    info = error_details_pb2.ErrorInfo(reason=reason or exc.reason, domain=DOMAIN, metadata=meta)
    packed = []
    for detail in (info, *details):
        any_msg = any_pb2.Any()
        any_msg.Pack(detail)
        packed.append(any_msg)
    message = str(exc)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    return RpcError(code=code, message=message, status=status)
