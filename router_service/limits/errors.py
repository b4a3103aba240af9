"""Errors of the limits: over a limit (RESOURCE_EXHAUSTED, never PERMISSION_DENIED), and a store
that cannot be reached under fail_closed (UNAVAILABLE: retry later)."""

from __future__ import annotations

from router_service.errors import RouterError
from router_service.limits.model import Level, Metric

# How long a caller refused for concurrency, or by an unreachable store, is told to wait.
DEFAULT_RETRY_S = 1.0


class LimitExceededError(RouterError):
    """A request would take a hard limit past its amount; nothing was counted.

    `entity` names what is limited ("team:search", "key:k_prod", "global"), `limit` is the amount
    in the metric's unit, `period` the window in words ("month (Europe/Berlin)", "per request").
    """

    status_code = "RESOURCE_EXHAUSTED"
    reason = "RATE_LIMITED"

    def __init__(
        self,
        *,
        level: Level,
        entity: str,
        metric: Metric,
        limit: int,
        period: str,
        retry_after_s: float | None,
        asked: int,
        current: int,
    ) -> None:
        self.level = level
        self.entity = entity
        self.metric = metric
        self.limit = limit
        self.period = period
        self.retry_after_s = retry_after_s
        self.asked = asked
        self.current = current
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"{self.entity} is over its {self.metric.value} limit of {self.limit} per {self.period}: "
            f"{self.current} used or reserved, this request needs {self.asked}"
        )


class BudgetExceededError(LimitExceededError):
    reason = "BUDGET_EXCEEDED"

    def _message(self) -> str:
        return (
            f"{self.entity} is over its budget of {_usd(self.limit)} per {self.period}: "
            f"{_usd(self.current)} spent or reserved, this request may cost up to {_usd(self.asked)}"
        )


class RequestCostCeilingError(BudgetExceededError):
    """The request alone may cost more than a budget's per-request ceiling: a smaller request
    (fewer max_output_tokens, a cheaper model) is the fix, so no RetryInfo."""

    reason = "REQUEST_COST_CEILING"

    def _message(self) -> str:
        return (
            f"this request may cost up to {_usd(self.asked)}, over the per-request ceiling of "
            f"{_usd(self.limit)} for {self.entity}"
        )


class LimitsUnavailableError(RouterError):
    """The limits store cannot be reached and a limit of this caller is fail_closed."""

    status_code = "UNAVAILABLE"
    reason = "LIMITS_STORE_UNAVAILABLE"

    def __init__(self, entity: str) -> None:
        self.entity = entity
        self.retry_after_s = DEFAULT_RETRY_S
        super().__init__(f"the limits store is unreachable and {entity} is limited fail_closed; retry later")


def _usd(nanos: int) -> str:
    """Exact: "$1.000000050" style with trailing zeros cut to cents."""
    whole, frac = divmod(nanos, 1_000_000_000)
    digits = f"{frac:09d}".rstrip("0")
    return f"${whole}.{digits.ljust(2, '0')}"
