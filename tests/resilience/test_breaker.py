"""The cooldown/breaker state machine, step by step with explicit times."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.errors import ErrorClass
from router_service.resilience.breaker import BreakerConfig, BreakerState, CircuitBreaker
from router_service.resilience.error_policy import DEFAULT_ERROR_POLICY

CONFIG = BreakerConfig(
    allowed_fails=2,
    fail_window_s=60,
    cooldown_s=10,
    cooldown_multiplier=2,
    max_cooldown_s=35,
    half_open_probes=1,
    probe_timeout_s=30,
    ramp_s=20,
    ramp_start_fraction=0.1,
)


def fail(
    breaker: CircuitBreaker, now: float, error: ErrorClass = ErrorClass.TIMEOUT, **kwargs: float
) -> None:
    breaker.on_failure(now, error, DEFAULT_ERROR_POLICY.rule(error), **kwargs)


def opened(config: BreakerConfig = CONFIG) -> CircuitBreaker:
    breaker = CircuitBreaker(config)
    for t in (0.0, 1.0, 2.0):
        fail(breaker, t)
    return breaker


def test_allowed_fails_within_the_window_keep_it_closed_one_more_opens_it() -> None:
    breaker = CircuitBreaker(CONFIG)
    fail(breaker, 0.0)
    fail(breaker, 1.0)
    assert breaker.state(1.0) is BreakerState.CLOSED
    fail(breaker, 2.0)
    assert breaker.state(2.0) is BreakerState.OPEN
    assert breaker.unavailable_reason(2.0) == "circuit open: cooling down 10.0s more after 3 failures in 60s"
    assert not breaker.try_acquire(5.0)


def test_failures_spread_beyond_the_window_never_open_it() -> None:
    breaker = CircuitBreaker(CONFIG)
    for t in (0.0, 40.0, 80.0, 120.0, 160.0):
        fail(breaker, t)
    assert breaker.state(160.0) is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("error", "retry_after", "open_for"),
    [
        (ErrorClass.RATE_LIMITED, 15.0, 15.0),  # honours Retry-After
        (ErrorClass.RATE_LIMITED, None, 10.0),  # else the configured cooldown
        (ErrorClass.RATE_LIMITED, 10_000.0, 300.0),  # capped at max_retry_after_s
        (ErrorClass.AUTH, None, 300.0),  # a broken key: the rule's own, longer cooldown
    ],
)
def test_cooldown_classes_open_at_once(error: ErrorClass, retry_after: float | None, open_for: float) -> None:
    breaker = CircuitBreaker(CONFIG)
    fail(breaker, 100.0, error, **({} if retry_after is None else {"retry_after_s": retry_after}))
    assert breaker.state(100.0 + open_for - 0.01) is BreakerState.OPEN
    assert breaker.state(100.0 + open_for) is BreakerState.HALF_OPEN


def test_retry_after_appears_in_the_reason() -> None:
    breaker = CircuitBreaker(CONFIG)
    fail(breaker, 0.0, ErrorClass.RATE_LIMITED, retry_after_s=5.0)
    assert breaker.unavailable_reason(1.0) == (
        "circuit open: cooling down 4.0s more after rate_limited (retry-after 5s)"
    )


@pytest.mark.parametrize(
    "error", [ErrorClass.INVALID_REQUEST, ErrorClass.CONTEXT_LENGTH_EXCEEDED, ErrorClass.CANCELLED]
)
def test_classes_that_say_nothing_about_health_never_open_it(error: ErrorClass) -> None:
    breaker = CircuitBreaker(CONFIG)
    for t in range(20):
        fail(breaker, float(t), error)
    assert breaker.state(20.0) is BreakerState.CLOSED


def test_half_open_admits_a_limited_number_of_probes() -> None:
    breaker = opened()
    assert breaker.state(12.0) is BreakerState.HALF_OPEN
    assert breaker.unavailable_reason(12.0) is None
    assert breaker.try_acquire(12.0)
    assert not breaker.try_acquire(12.1)
    assert breaker.unavailable_reason(12.1) == "circuit half-open: 1/1 probes in flight"


def test_a_lost_probe_slot_is_freed_after_probe_timeout() -> None:
    breaker = opened()
    assert breaker.try_acquire(12.0)
    assert not breaker.try_acquire(41.9)
    assert breaker.try_acquire(42.0)


def test_probe_success_starts_a_linear_slow_start_then_closes() -> None:
    breaker = opened()
    assert breaker.try_acquire(12.0)
    breaker.on_success(13.0)
    assert breaker.state(13.0) is BreakerState.RAMPING
    assert breaker.unavailable_reason(13.0) is None
    assert breaker.ramp_fraction(13.0) == pytest.approx(0.1)
    assert breaker.ramp_fraction(23.0) == pytest.approx(0.55)
    assert breaker.state(33.0) is BreakerState.CLOSED
    assert breaker.ramp_fraction(33.0) == 1.0


def test_probe_failure_reopens_for_longer_each_time_up_to_the_cap() -> None:
    breaker = opened()  # open for 10 s from t=2
    durations = []
    now = 12.0
    for _ in range(4):
        assert breaker.try_acquire(now)
        fail(breaker, now)
        snapshot = breaker.snapshot(now)
        durations.append(snapshot.open_remaining_s)
        assert snapshot.reason == "probe failed (timeout)"
        now += snapshot.open_remaining_s
    assert durations == [20.0, 35.0, 35.0, 35.0]


def test_full_recovery_resets_the_escalation() -> None:
    breaker = opened()
    assert breaker.try_acquire(12.0)
    breaker.on_success(12.0)
    assert breaker.state(32.0) is BreakerState.CLOSED
    for t in (40.0, 41.0, 42.0):
        fail(breaker, t)
    assert breaker.snapshot(42.0).open_remaining_s == 10.0


def test_failures_during_slow_start_reopen_it_by_the_usual_rule() -> None:
    breaker = opened()
    assert breaker.try_acquire(12.0)
    breaker.on_success(12.0)
    fail(breaker, 13.0)
    fail(breaker, 14.0)
    assert breaker.state(14.0) is BreakerState.RAMPING
    fail(breaker, 15.0)
    assert breaker.state(15.0) is BreakerState.OPEN
    assert breaker.snapshot(15.0).open_remaining_s == 20.0  # second open in a row


def test_a_non_health_failure_during_a_probe_frees_the_slot() -> None:
    breaker = opened()
    assert breaker.try_acquire(12.0)
    fail(breaker, 12.5, ErrorClass.INVALID_REQUEST)
    assert breaker.state(12.5) is BreakerState.HALF_OPEN
    assert breaker.try_acquire(12.6)


def test_min_failure_rate_spares_a_busy_deployment_with_few_errors() -> None:
    breaker = CircuitBreaker(BreakerConfig(allowed_fails=2, min_failure_rate=0.5))
    for t in (0.0, 1.0, 2.0, 3.0):
        fail(breaker, t, failure_rate=0.01)
    assert breaker.state(3.0) is BreakerState.CLOSED
    fail(breaker, 4.0, failure_rate=0.6)
    assert breaker.state(4.0) is BreakerState.OPEN


def test_a_later_longer_retry_after_extends_an_open_breaker() -> None:
    breaker = CircuitBreaker(CONFIG)
    fail(breaker, 0.0, ErrorClass.RATE_LIMITED, retry_after_s=5.0)
    fail(breaker, 1.0, ErrorClass.RATE_LIMITED, retry_after_s=30.0)
    assert breaker.state(30.9) is BreakerState.OPEN
    assert breaker.state(31.0) is BreakerState.HALF_OPEN


def test_zero_ramp_closes_straight_after_the_probe() -> None:
    breaker = opened(BreakerConfig(allowed_fails=2, cooldown_s=10, ramp_s=0))
    assert breaker.try_acquire(12.0)
    breaker.on_success(12.0)
    assert breaker.state(12.0) is BreakerState.CLOSED


@pytest.mark.parametrize(
    "fields",
    [{"allowed_fails": -1}, {"half_open_probes": 0}, {"ramp_start_fraction": 0.0}, {"cooldown_s": -1.0}],
)
def test_invalid_config(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BreakerConfig(**fields)  # type: ignore[arg-type]


EVENTS = st.lists(
    st.tuples(
        st.floats(0, 5),  # time step
        st.sampled_from(("acquire", "success", "fail", "rate_limited", "invalid")),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.integers(1, 3))
def test_admission_is_consistent_with_state_and_probe_limit(
    events: list[tuple[float, str]], probes: int
) -> None:
    config = BreakerConfig(
        allowed_fails=1, cooldown_s=3, half_open_probes=probes, ramp_s=4, probe_timeout_s=100
    )
    breaker = CircuitBreaker(config)
    now = 0.0
    for step, event in events:
        now += step
        state_before = breaker.state(now)
        if event == "acquire":
            admitted = breaker.try_acquire(now)
            assert (
                admitted == (state_before is not BreakerState.OPEN) or state_before is BreakerState.HALF_OPEN
            )
        elif event == "success":
            breaker.on_success(now)
        elif event == "fail":
            fail(breaker, now)
        elif event == "rate_limited":
            fail(breaker, now, ErrorClass.RATE_LIMITED, retry_after_s=step)
        else:
            fail(breaker, now, ErrorClass.INVALID_REQUEST)
        snapshot = breaker.snapshot(now)
        assert snapshot.probes_in_flight <= probes
        free_probe = snapshot.state is BreakerState.HALF_OPEN and snapshot.probes_in_flight < probes
        assert (breaker.unavailable_reason(now) is None) == (
            snapshot.state in (BreakerState.CLOSED, BreakerState.RAMPING) or free_probe
        )
        assert 0.0 < snapshot.ramp_fraction <= 1.0
