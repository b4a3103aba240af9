"""One table from router errors to gRPC statuses with rich details (google.rpc.Status).

Every error carries an ErrorInfo (domain DOMAIN, an UPPER_SNAKE reason) and at most one of each
detail type (AIP-193). Only our own error messages go on the wire; anything unexpected becomes
INTERNAL with a generic message and is logged server-side with the request id.

Everything here is bounded, whatever the caller sent: the status travels in the trailer, and a
default client refuses a trailer over 8 KiB (grpc.max_metadata_size) with RESOURCE_EXHAUSTED,
which would hide the real answer. The trailer holds grpc-message (percent-encoded: 3 bytes per
non-ASCII byte) and grpc-status-details-bin (base64: 4/3 of the Status, which holds the message
again). With the bounds below the two stay under about 5 KiB together.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from router_service.errors import (
    AllAttemptsFailedError,
    InvalidRequestError,
    NoEligibleCandidateError,
    PermissionDeniedError,
    RouterError,
    ShuttingDownError,
    StreamInterruptedError,
    UndecodableRequestError,
    UnknownModelError,
    UpstreamRejectedError,
    status_of,
)
from router_service.limits.errors import LimitExceededError, LimitsUnavailableError
from router_service.limits.rpc_details import limit_details
from router_service.status_details import retry_info

DOMAIN = "llmrouter.router.v1"
DEFAULT_RETRY_DELAY_S = 1.0

MAX_MESSAGE_WIRE_BYTES = 512  # grpc-message, as percent-encoded on the wire
MAX_FIELD_VIOLATIONS = 20  # the first ones; ErrorInfo metadata counts the rest
_MAX_BAD_REQUEST_BYTES = 1024
_MAX_METADATA_BYTES = 1536  # all ErrorInfo metadata entries together
_MAX_FIELD_BYTES = 128
_MAX_DESCRIPTION_BYTES = 160
_MAX_METADATA_KEY_BYTES = 64
_MAX_METADATA_VALUE_BYTES = 256
_MAX_STATUS_BYTES = 3072  # the serialized Status: 4 KiB in base64


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
        return _invalid_request(exc, request_id)
    if isinstance(exc, UndecodableRequestError):
        return _build(exc, request_id, {"message_type": exc.message_type})
    if isinstance(exc, UnknownModelError):
        info = error_details_pb2.ResourceInfo(
            resource_type=_clip(exc.kind, _MAX_FIELD_BYTES), resource_name=_clip(exc.name, _MAX_FIELD_BYTES)
        )
        return _build(exc, request_id, {"kind": exc.kind, "name": exc.name}, info)
    if isinstance(exc, PermissionDeniedError):
        return _permission_denied(exc, request_id)
    if isinstance(exc, NoEligibleCandidateError):
        return _build(exc, request_id, {f"excluded:{k}": v for k, v in list(exc.exclusions.items())[:16]})
    if isinstance(exc, AllAttemptsFailedError):
        return _all_failed(exc, request_id)
    if isinstance(exc, ShuttingDownError):
        return _build(exc, request_id, {}, retry_info(exc.retry_after_s))
    if isinstance(exc, UpstreamRejectedError):
        return _build(exc, request_id, {"target": exc.target, "error_class": exc.error.error_class.value})
    if isinstance(exc, (LimitExceededError, LimitsUnavailableError)):
        # RESOURCE_EXHAUSTED with QuotaFailure (level, entity, limit, period) and RetryInfo when
        # the window resets; UNAVAILABLE with RetryInfo for a fail_closed store outage.
        metadata, details = limit_details(exc)
        return _build(exc, request_id, metadata, *details)
    if isinstance(exc, StreamInterruptedError):
        meta = {
            "target": exc.target,
            "error_class": exc.error.error_class.value,
            "delivered_chars": str(exc.delivered_chars),
        }
        return _build(exc, request_id, meta)
    return _build(exc, request_id, {})


def _permission_denied(exc: PermissionDeniedError, request_id: str) -> RpcError:
    """ErrorInfo names the missing scope, or the model/alias/policy (with a ResourceInfo)."""
    if exc.scope:
        return _build(exc, request_id, {"scope": exc.scope})
    info = error_details_pb2.ResourceInfo(
        resource_type=_clip(exc.resource_kind, _MAX_FIELD_BYTES),
        resource_name=_clip(exc.resource, _MAX_FIELD_BYTES),
        owner=_clip(exc.owner, _MAX_FIELD_BYTES),
    )
    meta = {"kind": exc.resource_kind, "name": exc.resource}
    if exc.owner:
        meta["owner"] = exc.owner
    return _build(exc, request_id, meta, info)


def _invalid_request(exc: InvalidRequestError, request_id: str) -> RpcError:
    """The first violations that fit (every one when there are few) in BadRequest and in the
    message; how many were left out in metadata `omitted_field_violations`."""
    bad = error_details_pb2.BadRequest()
    for v in exc.violations[:MAX_FIELD_VIOLATIONS]:
        bad.field_violations.add(
            field=_clip(v.field, _MAX_FIELD_BYTES), description=_clip(v.description, _MAX_DESCRIPTION_BYTES)
        )
        if bad.ByteSize() > _MAX_BAD_REQUEST_BYTES:
            del bad.field_violations[-1]
            break
    omitted = len(exc.violations) - len(bad.field_violations)
    suffix = f" (and {omitted} more)" if omitted else ""
    listed = "; ".join(f"{v.field}: {v.description}" for v in bad.field_violations)
    meta = {"omitted_field_violations": str(omitted)} if omitted else {}
    message = _clip_wire(listed, MAX_MESSAGE_WIRE_BYTES - len(suffix)) + suffix
    return _build(exc, request_id, meta, bad, message=message)


def _all_failed(exc: AllAttemptsFailedError, request_id: str) -> RpcError:
    meta = {f"attempt{i}:{target}": e.error_class.value for i, (target, e) in enumerate(exc.failures)}
    if exc.prompt_too_long:
        return _build(exc, request_id, meta)
    delays = [e.retry_after_s for _, e in exc.failures if e.retry_after_s is not None]
    delay = min(delays) if delays else DEFAULT_RETRY_DELAY_S
    return _build(exc, request_id, meta, retry_info(delay))


def _build(
    exc: RouterError,
    request_id: str,
    metadata: dict[str, str],
    *details: Message,
    message: str | None = None,
) -> RpcError:
    code, reason = status_of(exc)
    info = error_details_pb2.ErrorInfo(
        reason=reason, domain=DOMAIN, metadata=_bounded_metadata(metadata, request_id)
    )
    text = _clip_wire(str(exc) if message is None else message, MAX_MESSAGE_WIRE_BYTES)
    grpc_code = grpc.StatusCode[code]
    status = status_pb2.Status(code=getattr(code_pb2, grpc_code.name), message=text)
    for detail in (info, *details):
        status.details.add().Pack(detail)
    # Every part is bounded above; this keeps the whole bounded even if a new detail is not.
    while status.ByteSize() > _MAX_STATUS_BYTES and len(status.details) > 1:
        del status.details[-1]
    return RpcError(code=grpc_code, message=text, status=status)


def _bounded_metadata(metadata: dict[str, str], request_id: str) -> dict[str, str]:
    """Entries in order while they fit in _MAX_METADATA_BYTES, each key and value clipped; the
    request id first, since callers quote it to operators; `omitted_metadata` counts the rest."""
    meta: dict[str, str] = {}
    if request_id:
        meta["request_id"] = _clip(request_id, _MAX_METADATA_VALUE_BYTES)
    used = len(meta.get("request_id", ""))
    for key, value in metadata.items():
        k, v = _clip(key, _MAX_METADATA_KEY_BYTES), _clip(value, _MAX_METADATA_VALUE_BYTES)
        size = len(k.encode()) + len(v.encode())
        if used + size > _MAX_METADATA_BYTES:
            meta["omitted_metadata"] = str(len(metadata) - (len(meta) - bool(request_id)))
            break
        meta[k] = v
        used += size
    return meta


_ELLIPSIS = "..."


def _clip(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8 (on a character boundary), marked when cut."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    return raw[: max_bytes - len(_ELLIPSIS)].decode("utf-8", "ignore") + _ELLIPSIS


def _wire_len(char: str) -> int:
    """Bytes of one character in grpc-message: printable ASCII but '%' as is, every other UTF-8
    byte as %XX."""
    return 1 if " " <= char <= "~" and char != "%" else 3 * len(char.encode())


def _clip_wire(text: str, max_wire: int) -> str:
    if len(text) <= max_wire and text.isascii() and text.isprintable() and "%" not in text:
        return text  # the common case: our own ASCII messages
    if sum(map(_wire_len, text)) <= max_wire:
        return text
    used = len(_ELLIPSIS)
    for i, char in enumerate(text):
        used += _wire_len(char)
        if used > max_wire:
            return text[:i] + _ELLIPSIS
    return text  # unreachable: the sum above was over max_wire
