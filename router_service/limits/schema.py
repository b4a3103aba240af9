"""The `limits:` config section (pydantic, at the edge) and its conversion to the runtime plan.

Every field is documented with its default in config/example.yaml. Amounts in USD are decimal
strings (quoted, so YAML never makes them floats), converted exactly to nano-USD.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from router_service.catalog import NANOS_PER_USD
from router_service.limits.model import EVERY_ENTITY, FailurePolicy, Level, Limit, Metric
from router_service.limits.periods import Period, PeriodUnit
from router_service.limits.plan import LimitsPlan

_USD_RE = re.compile(r"^\d+(\.\d{1,9})?$")
# Lua numbers are doubles: counters are exact up to 2^53 nano-USD (see redis_store.py).
MAX_BUDGET_NANOS = 2**53 - 1

LevelName = Literal["key", "team", "customer", "global"]
FailureName = Literal["fail_open", "fail_closed"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _nanos(usd: str) -> int:
    return int(Decimal(usd) * NANOS_PER_USD)


def _usd(value: str | None) -> str | None:
    if value is not None and not _USD_RE.match(value):
        raise ValueError("must be a non-negative decimal string with at most 9 decimals, e.g. '100.00'")
    if value is not None and _nanos(value) > MAX_BUDGET_NANOS:
        raise ValueError("must be at most 9007199.254740991 (exact counters: 2^53 nano-USD)")
    return value


class BudgetConfig(_Strict):
    """USD per period for one level: each key/team/customer separately (entity "*"), or one."""

    level: LevelName
    entity: Annotated[str, Field(min_length=1)] = EVERY_ENTITY
    usd: str
    period: Literal["hour", "day", "week", "month"] = "month"
    rolling: bool = False  # false: calendar periods in limits.time_zone; true: the last hour/day/...
    action: Literal["hard", "soft"] = "hard"  # soft: alert (metric) past 100%, never refuse
    downgrade_at: Annotated[float, Field(gt=0, le=1)] | None = None
    downgrade_policy: str = ""
    max_request_usd: str | None = None  # refuse one request whose worst-case cost is over this
    on_store_failure: FailureName = "fail_closed"

    @field_validator("usd", "max_request_usd")
    @classmethod
    def _amount(cls, value: str | None) -> str | None:
        return _usd(value)

    @model_validator(mode="after")
    def _consistent(self) -> BudgetConfig:
        if self.level == "global" and self.entity != EVERY_ENTITY:
            raise ValueError("a global budget has no entity")
        if (self.downgrade_at is None) != (not self.downgrade_policy):
            raise ValueError("downgrade_at and downgrade_policy go together")
        return self


class RateLimitConfig(_Strict):
    level: LevelName
    entity: Annotated[str, Field(min_length=1)] = EVERY_ENTITY
    requests_per_minute: Annotated[int, Field(ge=0)] | None = None
    tokens_per_minute: Annotated[int, Field(ge=0)] | None = None  # input + output
    concurrent: Annotated[int, Field(ge=0)] | None = None
    on_store_failure: FailureName = "fail_open"

    @model_validator(mode="after")
    def _something(self) -> RateLimitConfig:
        if self.level == "global" and self.entity != EVERY_ENTITY:
            raise ValueError("a global rate limit has no entity")
        if self.requests_per_minute is None and self.tokens_per_minute is None and self.concurrent is None:
            raise ValueError("set requests_per_minute, tokens_per_minute or concurrent")
        return self


class LimitsConfig(_Strict):
    """Budgets and rate limits (README "Budgets and limits"). No entries: nothing is limited."""

    store: Literal["memory", "redis"] = "memory"  # memory: this router alone; redis: shared
    redis_url: SecretStr = SecretStr("")  # redis://[:password@]host:port/db, for store: redis
    redis_prefix: str = "llmrouter:{limits}:"
    store_timeout_s: Annotated[float, Field(gt=0, le=10)] = 0.25  # then the failure policy applies
    time_zone: str = "UTC"  # calendar periods follow this zone's wall clock
    # A dead router's reservations come back after this; keep it over the longest request.
    reservation_ttl_s: Annotated[float, Field(gt=0)] = 600.0
    budgets: list[BudgetConfig] = []
    rate_limits: list[RateLimitConfig] = []

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}, e.g. 'Europe/Berlin'") from None
        return value

    @model_validator(mode="after")
    def _unique(self) -> LimitsConfig:
        problems: list[str] = []
        if self.store == "redis" and not self.redis_url.get_secret_value():
            problems.append("store redis needs redis_url")
        seen: set[tuple[str, str, str, bool]] = set()
        for i, b in enumerate(self.budgets):
            key = (b.level, b.entity, b.period, b.rolling)
            if key in seen:
                problems.append(f"budgets[{i}]: a second {b.period} budget for {b.level} {b.entity!r}")
            seen.add(key)
        seen_rate: set[tuple[str, str]] = set()
        for i, r in enumerate(self.rate_limits):
            if (r.level, r.entity) in seen_rate:
                problems.append(f"rate_limits[{i}]: a second entry for {r.level} {r.entity!r}")
            seen_rate.add((r.level, r.entity))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def policy_problems(self, policies: Iterable[str]) -> list[str]:
        """Downgrade policies that the config does not define (checked with the whole file)."""
        known = set(policies)
        return [
            f"limits.budgets[{i}].downgrade_policy: unknown policy {b.downgrade_policy!r}"
            for i, b in enumerate(self.budgets)
            if b.downgrade_policy and b.downgrade_policy not in known
        ]

    def to_plan(self) -> LimitsPlan:
        limits: list[Limit] = []
        for b in self.budgets:
            limits.append(
                Limit(
                    level=Level(b.level),
                    metric=Metric.COST,
                    amount=_nanos(b.usd),
                    period=Period(PeriodUnit(b.period), self.time_zone, b.rolling),
                    entity=b.entity,
                    hard=b.action == "hard",
                    downgrade_at=b.downgrade_at,
                    downgrade_policy=b.downgrade_policy,
                    on_store_failure=FailurePolicy(b.on_store_failure),
                    max_request_nanos=None if b.max_request_usd is None else _nanos(b.max_request_usd),
                )
            )
        minute = Period(PeriodUnit.MINUTE)
        for r in self.rate_limits:
            for metric, amount, period in (
                (Metric.REQUESTS, r.requests_per_minute, minute),
                (Metric.TOKENS, r.tokens_per_minute, minute),
                (Metric.CONCURRENT, r.concurrent, None),
            ):
                if amount is not None:
                    limits.append(
                        Limit(
                            level=Level(r.level),
                            metric=metric,
                            amount=amount,
                            period=period,
                            entity=r.entity,
                            on_store_failure=FailurePolicy(r.on_store_failure),
                        )
                    )
        return LimitsPlan(tuple(limits), reservation_ttl_s=self.reservation_ttl_s)
