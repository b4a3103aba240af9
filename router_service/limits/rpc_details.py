"""The rich-status details of a limits error, for the API's one status table (api/status.py):

    if isinstance(exc, (LimitExceededError, LimitsUnavailableError)):
        metadata, details = limit_details(exc)
        return _build(exc, request_id, metadata, *details)

Over a limit: QuotaFailure naming the entity ("team:search"), the limit and its period, plus
RetryInfo when the window resets (a per-request ceiling and a concurrency limit have no reset
time: none, resp. a short default). Store unreachable (fail_closed): RetryInfo only.
"""

from __future__ import annotations

from google.protobuf.message import Message
from google.rpc import error_details_pb2

from router_service.limits.errors import (
    DEFAULT_RETRY_S,
    LimitExceededError,
    LimitsUnavailableError,
    RequestCostCeilingError,
)
from router_service.limits.model import Metric
from router_service.status_details import retry_info

QUOTA_METRIC_PREFIX = "llmrouter.limits/"
_UNITS = {
    Metric.COST: "cost_nanos_usd",
    Metric.TOKENS: "tokens",
    Metric.REQUESTS: "requests",
    Metric.CONCURRENT: "concurrent_requests",
}


def limit_details(exc: LimitExceededError | LimitsUnavailableError) -> tuple[dict[str, str], list[Message]]:
    """(ErrorInfo metadata, detail messages) for `exc`."""
    if isinstance(exc, LimitsUnavailableError):
        return {"entity": exc.entity}, [retry_info(exc.retry_after_s)]
    quota_metric = QUOTA_METRIC_PREFIX + _UNITS[exc.metric]
    violation = error_details_pb2.QuotaFailure.Violation(
        subject=exc.entity,
        description=str(exc),
        quota_metric=quota_metric,
        quota_id=f"{exc.level.value}-{exc.metric.value}-per-{exc.period}",
        quota_dimensions={"level": exc.level.value, "entity": exc.entity},
        quota_value=exc.limit,
    )
    metadata = {
        "level": exc.level.value,
        "entity": exc.entity,
        "metric": exc.metric.value,
        "limit": str(exc.limit),
        "period": exc.period,
        "current": str(exc.current),
        "asked": str(exc.asked),
    }
    details: list[Message] = [error_details_pb2.QuotaFailure(violations=[violation])]
    if not isinstance(exc, RequestCostCeilingError):
        delay = exc.retry_after_s if exc.retry_after_s is not None else DEFAULT_RETRY_S
        details.append(retry_info(delay))
    return metadata, details
