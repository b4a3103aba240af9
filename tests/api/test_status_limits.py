"""The status table's rows for the limits: over a limit RESOURCE_EXHAUSTED (never
PERMISSION_DENIED) with QuotaFailure naming level and entity and RetryInfo for the reset; a
fail_closed store outage UNAVAILABLE with RetryInfo; a per-request ceiling without RetryInfo."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from router_service.api.status import to_rpc_error
from router_service.limits.errors import (
    BudgetExceededError,
    LimitExceededError,
    LimitsUnavailableError,
    RequestCostCeilingError,
)
from router_service.limits.model import Level, Metric


def unpacked(status: object, cls: type[Message]) -> Message | None:
    for detail in status.details:  # type: ignore[attr-defined]
        if detail.Is(cls.DESCRIPTOR):
            message = cls()
            detail.Unpack(message)
            return message
    return None


def test_a_team_budget_refusal_names_the_team_and_when_the_month_resets() -> None:
    exc = BudgetExceededError(
        level=Level.TEAM,
        entity="team:search",
        metric=Metric.COST,
        limit=1_000_000_000,
        period="month (UTC)",
        retry_after_s=3600.5,
        asked=61_050,
        current=999_990_000,
    )
    error = to_rpc_error(exc, "req-1")
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    quota = unpacked(error.status, error_details_pb2.QuotaFailure)
    assert isinstance(quota, error_details_pb2.QuotaFailure)
    [violation] = quota.violations
    assert (violation.subject, violation.quota_value) == ("team:search", 1_000_000_000)
    assert dict(violation.quota_dimensions) == {"level": "team", "entity": "team:search"}
    retry = unpacked(error.status, error_details_pb2.RetryInfo)
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (3600, 500_000_000)
    info = unpacked(error.status, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "BUDGET_EXCEEDED" and info.metadata["request_id"] == "req-1"
    assert info.metadata["entity"] == "team:search" and info.metadata["level"] == "team"


def test_a_rate_limit_refusal_is_resource_exhausted_with_its_window() -> None:
    exc = LimitExceededError(
        level=Level.KEY,
        entity="key:k_1",
        metric=Metric.TOKENS,
        limit=10_000,
        period="minute",
        retry_after_s=12.0,
        asked=4_100,
        current=9_000,
    )
    error = to_rpc_error(exc, "req-1")
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    info = unpacked(error.status, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo) and info.reason == "RATE_LIMITED"
    retry = unpacked(error.status, error_details_pb2.RetryInfo)
    assert isinstance(retry, error_details_pb2.RetryInfo) and retry.retry_delay.seconds == 12


def test_a_per_request_ceiling_has_no_retry_info() -> None:
    exc = RequestCostCeilingError(
        level=Level.TEAM,
        entity="team:search",
        metric=Metric.COST,
        limit=500_000_000,
        period="request",
        retry_after_s=None,
        asked=800_000_000,
        current=0,
    )
    error = to_rpc_error(exc, "req-1")
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert unpacked(error.status, error_details_pb2.QuotaFailure) is not None
    assert unpacked(error.status, error_details_pb2.RetryInfo) is None


def test_a_fail_closed_store_outage_is_unavailable_with_retry_info() -> None:
    error = to_rpc_error(LimitsUnavailableError("team:search"), "req-1")
    assert error.code is grpc.StatusCode.UNAVAILABLE
    info = unpacked(error.status, error_details_pb2.ErrorInfo)
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == "LIMITS_STORE_UNAVAILABLE" and info.metadata["entity"] == "team:search"
    assert unpacked(error.status, error_details_pb2.RetryInfo) is not None
    assert unpacked(error.status, error_details_pb2.QuotaFailure) is None
