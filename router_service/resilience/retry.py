"""Retry arithmetic: backoff with full jitter, a retry budget, and deadlines.

All pure: randomness and time are arguments. How the engine uses them, per failed attempt:

1. `ErrorPolicy.rule(error_class).retry` says whether this class is retried at all;
2. `next_retry_delay(config, retries_so_far, remaining_s, u, retry_after_s)` gives the sleep, or
   None when this deployment has had its retries or the deadline cannot fit another useful try;
3. `budget.try_spend(now)` must say yes (it also gates hedges), else fall back instead;
4. each attempt runs under `attempt_timeout(remaining_s, per_attempt_s, min_useful_s)`; None
   means there is no time left worth starting an attempt for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from router_service.resilience.window import SlidingWindow

_MAX_EXPONENT = 62  # 2**62 already exceeds any sane max_s; keeps the float finite


@dataclass(frozen=True, slots=True)
class RetryConfig:
    # Retries of the same deployment after its first attempt (fallbacks are not retries).
    max_retries: int = 2
    base_s: float = 0.1
    max_backoff_s: float = 5.0
    # Limit for one attempt; the caller's deadline bounds the whole request.
    per_attempt_timeout_s: float = 30.0
    # Don't start (or sleep towards) an attempt with less time than this left.
    min_useful_s: float = 0.05


def backoff_delay(
    attempt: int, base_s: float, max_s: float, random_value: float, retry_after_s: float | None = None
) -> float:
    """Sleep before retry number `attempt` (0 for the first retry).

    Full jitter: uniform in [0, min(max_s, base_s * 2**attempt)] given `random_value` uniform in
    [0, 1). Spreading retries over the whole interval de-synchronises clients better than
    "equal" or "decorrelated" jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").
    A provider's Retry-After is a floor: retrying earlier would be rejected anyway.
    """
    ceiling = min(max_s, base_s * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    delay = random_value * ceiling
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


def attempt_timeout(remaining_s: float, per_attempt_s: float, min_useful_s: float) -> float | None:
    """Timeout for the next attempt, or None if too little time is left to bother.

    `remaining_s` is what is left of the caller's deadline (math.inf when there is none).
    """
    timeout = min(remaining_s, per_attempt_s)
    return timeout if timeout >= min_useful_s else None


def next_retry_delay(
    config: RetryConfig,
    retries_so_far: int,
    remaining_s: float,
    random_value: float,
    retry_after_s: float | None = None,
) -> float | None:
    """Sleep before retrying the same deployment, or None if it should not be retried.

    None when this deployment has used `max_retries`, or when after sleeping less than
    `min_useful_s` of the deadline would be left (better to fall back now than to sleep in vain).
    """
    if retries_so_far >= config.max_retries:
        return None
    delay = backoff_delay(retries_so_far, config.base_s, config.max_backoff_s, random_value, retry_after_s)
    if remaining_s - delay < config.min_useful_s:
        return None
    return delay


def remaining_s(deadline_at: float | None, now: float) -> float:
    """Seconds left before an absolute deadline; math.inf without one."""
    return math.inf if deadline_at is None else deadline_at - now


@dataclass(frozen=True, slots=True)
class RetryBudgetConfig:
    # Retries (and hedges) allowed as a share of requests in the window...
    ratio: float = 0.2
    # ...plus this many per second, so low-traffic callers can still retry at all.
    min_per_s: float = 1.0
    window_s: float = 10.0
    window_slots: int = 10


_REQUESTS = 0
_RETRIES = 1


class RetryBudget:
    """Caps retries at `ratio` of recent requests plus `min_per_s` (Finagle's RetryBudget).

    During an outage every request fails and would be retried; without a budget that multiplies
    the load on a struggling provider by (1 + max_retries). With one, extra load is bounded by
    `ratio` no matter how many requests fail. Counts live in a sliding window: O(1), bounded.
    """

    __slots__ = ("_config", "_reserve", "_window")

    def __init__(self, config: RetryBudgetConfig | None = None) -> None:
        self._config = config or RetryBudgetConfig()
        self._window = SlidingWindow(self._config.window_s, self._config.window_slots, 2)
        self._reserve = self._config.min_per_s * self._config.window_s

    def record_request(self, now: float) -> None:
        """Count one original request (not its retries or hedges)."""
        self._window.add(now, _REQUESTS)

    def available(self, now: float) -> float:
        totals = self._window.totals(now)
        return self._config.ratio * totals[_REQUESTS] + self._reserve - totals[_RETRIES]

    def try_spend(self, now: float) -> bool:
        """Take one retry (or hedge) from the budget; False when it is exhausted."""
        if self.available(now) < 1.0:
            return False
        self._window.add(now, _RETRIES)
        return True


class RetryBudgets:
    """One `RetryBudget` per provider, so one provider's outage cannot spend another's retries.
    Process-wide and outliving config reloads (what was spent is not config); a provider's budget
    is created, with the settings then in force, the first time a request goes to it."""

    __slots__ = ("_budgets",)

    def __init__(self) -> None:
        self._budgets: dict[str, RetryBudget] = {}

    def for_provider(self, provider: str, config: RetryBudgetConfig) -> RetryBudget:
        budget = self._budgets.get(provider)
        if budget is None:
            budget = self._budgets[provider] = RetryBudget(config)
        return budget
