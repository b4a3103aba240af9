"""What is limited: frozen runtime objects built once from the `limits:` config section.

Every limit, budget or rate limit, is one counter per entity and window that a request reserves
`ask` units against and later settles to what it really used:

| metric       | unit      | ask (reserve)                  | settle                 |
|--------------|-----------|--------------------------------|------------------------|
| `cost`       | nano-USD  | the worst-case cost            | the exact cost         |
| `tokens`     | tokens    | estimated input + max output   | real input + output    |
| `requests`   | requests  | 1                              | 1 (a request happened) |
| `concurrent` | requests  | 1                              | 0 (it is over)         |

Standard library only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from router_service.limits.periods import Period


class Level(enum.Enum):
    """The levels an identity has, most specific first (the order decisions are reported in)."""

    KEY = "key"
    TEAM = "team"
    CUSTOMER = "customer"
    GLOBAL = "global"


class Metric(enum.Enum):
    COST = "cost"
    TOKENS = "tokens"
    REQUESTS = "requests"
    CONCURRENT = "concurrent"


class FailurePolicy(enum.Enum):
    """What a limit does when the store cannot be reached: admit uncounted, or refuse."""

    FAIL_OPEN = "fail_open"
    FAIL_CLOSED = "fail_closed"


EVERY_ENTITY = "*"  # a limit for each entity of its level separately (global: the one entity)


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit of one level. `entity` is a key id, team or customer name, or EVERY_ENTITY: a
    limit naming an entity replaces the level's EVERY_ENTITY limits of the same metric for it."""

    level: Level
    metric: Metric
    amount: int  # nano-USD for cost, tokens, requests; hard limits refuse beyond it
    period: Period | None  # None: concurrent (no window)
    entity: str = EVERY_ENTITY
    hard: bool = True  # False: alert (metric) and never refuse
    # At this share of `amount` used (reserved included), the caller's calls move to this policy.
    downgrade_at: float | None = None
    downgrade_policy: str = ""
    on_store_failure: FailurePolicy = FailurePolicy.FAIL_CLOSED
    # Budgets only: a request whose worst-case cost exceeds this is refused before any count.
    max_request_nanos: int | None = None

    def __post_init__(self) -> None:
        if self.amount < 0:
            raise ValueError("a limit amount cannot be negative")
        if (self.period is None) != (self.metric is Metric.CONCURRENT):
            raise ValueError("exactly the concurrent metric has no period")
        if self.downgrade_at is not None and not (0 < self.downgrade_at <= 1 and self.downgrade_policy):
            raise ValueError("downgrade_at must be in (0, 1] and needs a downgrade_policy")

    @property
    def period_text(self) -> str:
        return self.period.describe if self.period is not None else "concurrent"


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a request may use at most, before it is sent: the reservation."""

    cost_nanos: int  # worst case over the candidates (see limits.cost.worst_case_cost)
    tokens: int  # estimated input + max output tokens

    def ask(self, metric: Metric) -> int:
        if metric is Metric.COST:
            return self.cost_nanos
        if metric is Metric.TOKENS:
            return self.tokens
        return 1


@dataclass(frozen=True, slots=True)
class Usage:
    """What a request really used, reported at settle."""

    cost_nanos: int
    tokens: int

    def actual(self, metric: Metric) -> int:
        if metric is Metric.COST:
            return self.cost_nanos
        if metric is Metric.TOKENS:
            return self.tokens
        return 1 if metric is Metric.REQUESTS else 0


NOTHING_USED = Usage(0, 0)  # a released request: its cost, tokens and slot come back


@dataclass(frozen=True, slots=True)
class Bound:
    """A limit as it applies to one caller: the entity it counts, "team:search"."""

    limit: Limit
    entity: str  # "team:search", "key:k_prod", "global"

    @property
    def counter_base(self) -> str:
        """Store key of this limit's counter, before the window part."""
        return f"{self.limit.metric.value}:{self.entity}"


class Check(NamedTuple):
    """One counter a reservation touches, as the store sees it (plain values only). A NamedTuple,
    not a frozen dataclass: several are built per request, and a tuple builds several times faster."""

    counter: str  # "cost:team:search:month:2025-03", "concurrent:key:k_prod"
    field: str  # where spend is written: "u", or a rolling bucket "u<n>"
    oldest_bucket: int  # rolling: buckets below this stop counting; -1: one field
    limit: int  # -1: never refuse (soft)
    ask: int
    expire_at: float  # the counter may be dropped after this (window end + margin); 0: never


class Settlement(NamedTuple):
    counter: str
    field: str
    reserved: int
    actual: int
    expire_at: float
