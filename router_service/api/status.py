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
    InvalidRequestError,
    NoEligibleCandidateError,
    RouterError,
    StreamInterruptedError,
    UnknownModelError,
    UpstreamRejectedError,
    status_of,
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
    """The status for `exc`: code and reason come from the error itself; details by type."""
    if not isinstance(exc, RouterError):
        return _build(RouterError("internal error"), request_id, {})
    if isinstance(exc, InvalidRequestError):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in exc.violations
            ]
        )
        return _build(exc, request_id, {}, bad)
    if isinstance(exc, UnknownModelError):
        info = error_details_pb2.ResourceInfo(resource_type=exc.kind, resource_name=exc.name)
        return _build(exc, request_id, {"kind": exc.kind, "name": exc.name}, info)
    if isinstance(exc, NoEligibleCandidateError):
        return _build(exc, request_id, {f"excluded:{k}": v for k, v in list(exc.exclusions.items())[:16]})
    if isinstance(exc, AllAttemptsFailedError):
        return _all_failed(exc, request_id)
    if isinstance(exc, UpstreamRejectedError):
        return _build(exc, request_id, {"target": exc.target, "error_class": exc.error.error_class.value})
    if isinstance(exc, StreamInterruptedError):
        meta = {
            "target": exc.target,
            "error_class": exc.error.error_class.value,
            "delivered_chars": str(exc.delivered_chars),
        }
        return _build(exc, request_id, meta)
    return _build(exc, request_id, {})


def _all_failed(exc: AllAttemptsFailedError, request_id: str) -> RpcError:
    meta = {f"attempt{i}:{target}": e.error_class.value for i, (target, e) in enumerate(exc.failures)}
    if exc.prompt_too_long:
        return _build(exc, request_id, meta)
    delays = [e.retry_after_s for _, e in exc.failures if e.retry_after_s is not None]
    delay = min(delays) if delays else DEFAULT_RETRY_DELAY_S
    retry = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=int(delay), nanos=int(delay % 1 * 1e9))
    )
    return _build(exc, request_id, meta, retry)


def _build(exc: RouterError, request_id: str, metadata: dict[str, str], *details: object) -> RpcError:
    code, reason = status_of(exc)
    meta = {k: v[:_MAX_METADATA_VALUE] for k, v in metadata.items()}
    if request_id:
        meta["request_id"] = request_id
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=meta)
    packed = []
    for detail in (info, *details):
        any_msg = any_pb2.Any()
        any_msg.Pack(detail)
        packed.append(any_msg)
    message = str(exc)
    grpc_code = grpc.StatusCode[code]
    status = status_pb2.Status(code=getattr(code_pb2, grpc_code.name), message=message, details=packed)
    return RpcError(code=grpc_code, message=message, status=status)
