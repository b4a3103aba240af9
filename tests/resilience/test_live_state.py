"""LiveState: what the engine records and what routing and metrics read back."""

from __future__ import annotations

import pytest

from router_service.errors import ErrorClass
from router_service.resilience.breaker import BreakerConfig, BreakerState
from router_service.resilience.live_state import LiveState, LiveStateConfig

CONFIG = LiveStateConfig(
    min_latency_samples=5,
    quantile_refresh_s=0.0,
    breaker=BreakerConfig(allowed_fails=1, cooldown_s=10, ramp_s=20, ramp_start_fraction=0.2),
)


def trip(live: LiveState, key: str, now: float) -> None:
    live.record_failure(key, ErrorClass.TIMEOUT, now)
    live.record_failure(key, ErrorClass.TIMEOUT, now)


def test_in_flight_counts_begin_and_end_and_never_go_negative() -> None:
    live = LiveState(CONFIG)
    live.begin("a/x", 0.0)
    live.begin("a/x", 0.0)
    live.end("a/x")
    assert live.in_flight("a/x") == 1
    live.end("a/x")
    live.end("a/x")
    live.end("never/seen")
    assert live.in_flight("a/x") == 0


def test_latency_quantiles_appear_once_there_is_enough_data() -> None:
    live = LiveState(CONFIG)
    for i in range(4):
        live.record_success("a/x", 1.0, 0.2, float(i))
    assert live.latency_p95_s("a/x", 4.0) is None
    live.record_success("a/x", 1.0, 0.2, 4.0)
    assert live.latency_p95_s("a/x", 4.0) == pytest.approx(1.0, rel=0.1)
    assert live.ttft_p95_s("a/x", 4.0) == pytest.approx(0.2, rel=0.1)
    assert live.latency_p95_s("b/unknown", 4.0) is None


def test_routing_reads_refresh_about_every_quantile_refresh_s() -> None:
    live = LiveState(LiveStateConfig(min_latency_samples=1, quantile_refresh_s=1.0))
    live.record_success("a/x", 0.1, None, 0.0)
    assert live.latency_p95s(["a/x", "b/none"], 0.0) == [pytest.approx(0.1, rel=0.1), None]
    for _ in range(100):
        live.record_success("a/x", 9.0, None, 0.1)
    assert live.latency_p95s(["a/x"], 0.2)[0] == pytest.approx(0.1, rel=0.1)  # still the cached value
    assert live.latency_p95s(["a/x"], 1.6)[0] == pytest.approx(9.0, rel=0.1)  # refreshed within 1.5 s
    fresh = live.latency("a/x", 0.2)  # metrics read fresh quantiles
    assert fresh is not None and fresh.p95_s == pytest.approx(9.0, rel=0.1)


def test_refreshes_of_deployments_seen_together_are_staggered() -> None:
    live = LiveState(LiveStateConfig(min_latency_samples=1, quantile_refresh_s=1.0))
    keys = [f"p/m{i}" for i in range(20)]
    for key in keys:
        live.record_success(key, 0.1, None, 0.0)
    live.latency_p95s(keys, 0.0)
    for key in keys:
        for _ in range(50):
            live.record_success(key, 9.0, None, 0.1)
    refreshed = sum(p95 is not None and p95 > 1.0 for p95 in live.latency_p95s(keys, 1.0))
    assert 0 < refreshed < len(keys)
    assert all(p95 is not None and p95 > 1.0 for p95 in live.latency_p95s(keys, 1.5))


def test_ttft_is_only_recorded_when_known() -> None:
    live = LiveState(CONFIG)
    for i in range(10):
        live.record_success("a/x", 1.0, None, float(i))
    assert live.ttft("a/x", 10.0) is None


def test_error_rate_counts_only_failures_that_say_something_about_health() -> None:
    live = LiveState(LiveStateConfig(breaker=BreakerConfig(allowed_fails=100)))
    for i in range(6):
        live.record_success("a/x", 0.5, None, float(i))
    live.record_failure("a/x", ErrorClass.TIMEOUT, 6.0)
    live.record_failure("a/x", ErrorClass.OVERLOADED, 7.0)
    live.record_failure("a/x", ErrorClass.INVALID_REQUEST, 8.0)  # the caller's fault
    assert live.error_rate("a/x", 9.0) == pytest.approx(2 / 8)
    (snapshot,) = live.snapshot(9.0)
    assert dict(snapshot.errors_by_class) == {"timeout": 1, "overloaded": 1, "invalid_request": 1}


def test_breaker_state_drives_unavailability_and_admission() -> None:
    live = LiveState(CONFIG)
    trip(live, "a/x", 0.0)
    assert (
        live.unavailable_reason("a/x", 1.0) == "circuit open: cooling down 9.0s more after 2 failures in 60s"
    )
    assert live.unavailable_reasons(1.0) == {
        "a/x": "circuit open: cooling down 9.0s more after 2 failures in 60s"
    }
    assert not live.try_acquire("a/x", 1.0)
    assert live.unavailable_reason("b/y", 1.0) is None
    assert live.try_acquire("b/y", 1.0)
    # Half-open: one probe.
    assert live.unavailable_reasons(10.0) == {}
    assert live.try_acquire("a/x", 10.0)
    assert live.unavailable_reason("a/x", 10.0) == "circuit half-open: 1/1 probes in flight"
    assert not live.try_acquire("a/x", 10.0)
    live.record_success("a/x", 0.3, None, 10.5)
    assert live.breaker_state("a/x", 10.5) is BreakerState.RAMPING
    assert live.ramp_fraction("a/x", 10.5) == pytest.approx(0.2)
    assert live.ramping(10.5) == {"a/x": pytest.approx(0.2)}
    assert live.ramp_fraction("a/x", 30.5) == 1.0
    assert live.ramping(30.5) == {}
    assert live.breaker_state("a/x", 30.5) is BreakerState.CLOSED
    assert live.unavailable_reasons(30.5) == {}


def test_bulk_reasons_follow_changes_within_the_same_tenth_of_a_second() -> None:
    live = LiveState(CONFIG)
    assert live.unavailable_reasons(5.0) == {}
    trip(live, "a/x", 5.0)
    assert set(live.unavailable_reasons(5.0)) == {"a/x"}


def test_rate_limit_honours_retry_after() -> None:
    live = LiveState(CONFIG)
    live.record_failure("a/x", ErrorClass.RATE_LIMITED, 0.0, retry_after_s=3.0)
    assert live.unavailable_reason("a/x", 2.9) is not None
    assert live.unavailable_reason("a/x", 3.0) is None


def test_error_policy_overrides_reach_the_breaker() -> None:
    from router_service.resilience.error_policy import ErrorPolicy

    config = LiveStateConfig(error_policy=ErrorPolicy.with_overrides({"rate_limited": {"cooldown": False}}))
    live = LiveState(config)
    live.record_failure("a/x", ErrorClass.RATE_LIMITED, 0.0, retry_after_s=30.0)
    assert live.unavailable_reason("a/x", 1.0) is None


def test_snapshot_lists_every_seen_deployment_and_requested_keys() -> None:
    live = LiveState(CONFIG)
    for i in range(5):
        live.record_success("b/y", 0.2, 0.05, float(i))
    trip(live, "a/x", 4.0)
    live.begin("b/y", 4.0)
    snapshots = {s.key: s for s in live.snapshot(5.0, keys=["c/never"])}
    assert list(snapshots) == ["a/x", "b/y", "c/never"]
    assert snapshots["a/x"].breaker.state is BreakerState.OPEN
    assert snapshots["a/x"].breaker.open_remaining_s == pytest.approx(9.0)
    assert snapshots["a/x"].error_rate == 1.0
    assert snapshots["b/y"].in_flight == 1
    assert snapshots["b/y"].latency is not None and snapshots["b/y"].latency.count == 5
    assert snapshots["c/never"].breaker.state is BreakerState.CLOSED
    assert snapshots["c/never"].latency is None
