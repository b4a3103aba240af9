"""after_failure: retry, fall back or stop, by error class, retries left, deadline and budget."""

from __future__ import annotations

import math

import pytest

from router_service.errors import ErrorClass
from router_service.resilience.error_policy import DEFAULT_ERROR_POLICY, ErrorPolicy
from router_service.resilience.recovery import Action, Failure, Recovery, after_failure
from router_service.resilience.retry import RetryBudget, RetryBudgetConfig, RetryConfig

RETRY = RetryConfig(max_retries=2, base_s=0.1, max_backoff_s=1.0, min_useful_s=0.05)


def decide(
    failure: Failure, budget: RetryBudget | None = None, policy: ErrorPolicy = DEFAULT_ERROR_POLICY
) -> Recovery:
    return after_failure(failure, policy, RETRY, budget, now=0.0, random_value=0.5)


@pytest.mark.parametrize(
    ("error_class", "expected"),
    [
        (ErrorClass.TIMEOUT, Recovery(Action.RETRY, delay_s=0.05)),
        (ErrorClass.OVERLOADED, Recovery(Action.RETRY, delay_s=0.05)),
        (ErrorClass.RATE_LIMITED, Recovery(Action.FALL_BACK)),  # cooled down: go elsewhere now
        (ErrorClass.AUTH, Recovery(Action.FALL_BACK)),
        (ErrorClass.CONTEXT_LENGTH_EXCEEDED, Recovery(Action.FALL_BACK, larger_context=True)),
        (ErrorClass.INVALID_REQUEST, Recovery(Action.STOP)),
        (ErrorClass.CANCELLED, Recovery(Action.STOP)),
    ],
)
def test_first_failure_by_class(error_class: ErrorClass, expected: Recovery) -> None:
    assert decide(Failure(error_class, retries_so_far=0, remaining_s=math.inf)) == expected


def test_out_of_retries_falls_back() -> None:
    assert decide(Failure(ErrorClass.TIMEOUT, retries_so_far=2, remaining_s=10.0)).action is Action.FALL_BACK


def test_no_time_for_the_backoff_falls_back() -> None:
    assert decide(Failure(ErrorClass.TIMEOUT, retries_so_far=0, remaining_s=0.06)).action is Action.FALL_BACK


def test_retry_after_sets_the_delay() -> None:
    recovery = decide(Failure(ErrorClass.OVERLOADED, retries_so_far=0, remaining_s=10.0, retry_after_s=2.0))
    assert recovery == Recovery(Action.RETRY, delay_s=2.0)


def test_an_empty_budget_turns_retries_into_fallbacks() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.0, min_per_s=0.1, window_s=10.0))
    failure = Failure(ErrorClass.TIMEOUT, retries_so_far=0, remaining_s=10.0)
    assert decide(failure, budget).action is Action.RETRY  # the one token of the reserve
    assert decide(failure, budget).action is Action.FALL_BACK


def test_config_overrides_change_the_decision() -> None:
    policy = ErrorPolicy.with_overrides({"timeout": {"retry": False, "fallback": "none"}})
    assert decide(Failure(ErrorClass.TIMEOUT, 0, 10.0), policy=policy).action is Action.STOP
