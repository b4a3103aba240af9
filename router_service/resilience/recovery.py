"""What the engine does after a failed attempt: retry it, fall back, or stop. One pure decision.

    rule says retry, the deployment has retries left, the deadline fits the backoff,
    and the retry budget has a token                          -> RETRY after `delay_s`
    otherwise, rule says fall back                            -> FALL_BACK (maybe only to a
                                                                 larger context window)
    otherwise (the caller's invalid request, a cancellation)  -> STOP

Retries of the same deployment spend from the retry budget (as hedges do); fallbacks do not:
they move load away from a failing deployment rather than adding to it. Give each provider its
own budget, so one provider's outage cannot use up another's retries.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from router_service.errors import ErrorClass
from router_service.resilience.error_policy import ErrorPolicy, Fallback
from router_service.resilience.retry import RetryBudget, RetryConfig, next_retry_delay


class Action(enum.Enum):
    RETRY = "retry"
    FALL_BACK = "fall_back"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Recovery:
    action: Action
    delay_s: float = 0.0  # RETRY: sleep this long first
    larger_context: bool = False  # FALL_BACK: only to deployments with a larger context window


STOP = Recovery(Action.STOP)
FALL_BACK = Recovery(Action.FALL_BACK)
FALL_BACK_LARGER = Recovery(Action.FALL_BACK, larger_context=True)


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt and where the request stands."""

    error_class: ErrorClass
    retries_so_far: int  # retries of this deployment already made for this request
    remaining_s: float  # left of the caller's deadline (math.inf without one)
    retry_after_s: float | None = None


def after_failure(
    failure: Failure,
    policy: ErrorPolicy,
    retry: RetryConfig,
    budget: RetryBudget | None,
    now: float,
    random_value: float,
) -> Recovery:
    """The next step; takes a token from `budget` when it decides to retry."""
    rule = policy.rule(failure.error_class)
    if rule.retry:
        delay = next_retry_delay(
            retry, failure.retries_so_far, failure.remaining_s, random_value, failure.retry_after_s
        )
        if delay is not None and (budget is None or budget.try_spend(now)):
            return Recovery(Action.RETRY, delay_s=delay)
    if rule.fallback is Fallback.NONE:
        return STOP
    return FALL_BACK_LARGER if rule.fallback is Fallback.LARGER_CONTEXT else FALL_BACK
