"""Backoff with full jitter, deadline arithmetic, and a retry budget that caps amplification."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router_service.resilience.retry import (
    RetryBudget,
    RetryBudgetConfig,
    RetryConfig,
    attempt_timeout,
    backoff_delay,
    next_retry_delay,
    remaining_s,
)


@pytest.mark.parametrize(
    ("attempt", "random_value", "retry_after", "delay"),
    [
        (0, 0.5, None, 0.05),  # half of base
        (1, 0.5, None, 0.1),
        (3, 1.0, None, 0.8),
        (10, 1.0, None, 2.0),  # capped at max_s
        (10_000, 0.5, None, 1.0),  # huge attempt numbers do not overflow
        (0, 0.0, None, 0.0),  # full jitter includes zero
        (0, 0.1, 3.0, 3.0),  # Retry-After is a floor
        (5, 0.99, 0.5, 1.98),
        (-1, 1.0, None, 0.1),
    ],
)
def test_backoff_delay(attempt: int, random_value: float, retry_after: float | None, delay: float) -> None:
    assert backoff_delay(attempt, 0.1, 2.0, random_value, retry_after) == pytest.approx(delay)


@given(st.integers(0, 100), st.floats(0, 1, exclude_max=True))
def test_full_jitter_stays_within_zero_and_the_exponential_ceiling(attempt: int, u: float) -> None:
    delay = backoff_delay(attempt, 0.1, 5.0, u)
    assert 0.0 <= delay <= min(5.0, 0.1 * 2.0 ** min(attempt, 62))


def test_full_jitter_is_uniform_over_the_interval() -> None:
    rng = random.Random(3)
    delays = [backoff_delay(2, 0.1, 10.0, rng.random()) for _ in range(10_000)]
    assert sum(delays) / len(delays) == pytest.approx(0.2, rel=0.03)  # mean of U(0, 0.4)
    assert max(delays) <= 0.4


@pytest.mark.parametrize(
    ("remaining", "per_attempt", "min_useful", "timeout"),
    [
        (10.0, 30.0, 0.05, 10.0),
        (100.0, 30.0, 0.05, 30.0),
        (math.inf, 30.0, 0.05, 30.0),
        (0.04, 30.0, 0.05, None),
        (0.05, 30.0, 0.05, 0.05),
        (-1.0, 30.0, 0.05, None),
    ],
)
def test_attempt_timeout(
    remaining: float, per_attempt: float, min_useful: float, timeout: float | None
) -> None:
    assert attempt_timeout(remaining, per_attempt, min_useful) == timeout


@pytest.mark.parametrize(
    ("retries_so_far", "remaining", "retry_after", "delay"),
    [
        (0, 10.0, None, 0.05),
        (1, 10.0, None, 0.1),
        (2, 10.0, None, None),  # max_retries used
        (0, 0.06, None, None),  # sleeping would leave less than min_useful_s
        (0, 10.0, 9.99, None),  # Retry-After longer than the deadline allows
        (0, 10.0, 2.0, 2.0),
    ],
)
def test_next_retry_delay(
    retries_so_far: int, remaining: float, retry_after: float | None, delay: float | None
) -> None:
    config = RetryConfig(max_retries=2, base_s=0.1, max_backoff_s=5.0, min_useful_s=0.05)
    assert next_retry_delay(config, retries_so_far, remaining, 0.5, retry_after) == pytest.approx(delay)


def test_remaining_s() -> None:
    assert remaining_s(None, 5.0) == math.inf
    assert remaining_s(12.5, 10.0) == 2.5


def test_budget_allows_the_minimum_rate_without_traffic() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.2, min_per_s=1.0, window_s=10.0))
    assert sum(budget.try_spend(0.0) for _ in range(50)) == 10  # 1/s over a 10 s window


def test_budget_grows_with_requests_by_the_ratio() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.2, min_per_s=0.0, window_s=10.0))
    for _ in range(100):
        budget.record_request(0.0)
    assert sum(budget.try_spend(0.0) for _ in range(100)) == 20


def test_budget_refills_as_the_window_moves() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.0, min_per_s=0.5, window_s=10.0, window_slots=10))
    assert sum(budget.try_spend(0.0) for _ in range(10)) == 5
    assert not budget.try_spend(9.9)
    assert budget.try_spend(10.5)  # the slot holding the first retries has expired


def test_an_outage_cannot_amplify_load_beyond_the_ratio() -> None:
    # Every request fails and wants 3 retries: without a budget that is 4x the load.
    budget = RetryBudget(RetryBudgetConfig(ratio=0.2, min_per_s=1.0, window_s=10.0))
    requests = retries = 0
    for tick in range(6_000):  # 100 requests/s for 60 s
        now = tick / 100
        budget.record_request(now)
        requests += 1
        for _ in range(3):
            if not budget.try_spend(now):
                break
            retries += 1
    # ratio + min_per_s / request rate = 0.2 + 1/100, instead of 3.0 without a budget.
    assert retries / requests == pytest.approx(0.21, abs=0.005)
