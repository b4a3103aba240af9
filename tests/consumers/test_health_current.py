"""Health that says "failing now" (issue 19, item 3): failure streaks and routers' open breakers.

A provider answering 500 to everything, seen by one router whose breaker let only a handful of
failures through, must score below the routers' demotion threshold fleet-wide, however many
successes came before; one success lifts that. Pure: aggregators fed literal events, the reader,
the router's view.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import events as ce
from consumers.decode import decode
from consumers.health.aggregate import HealthAggregator, HealthConfig
from router_contract.health_recent import Recent
from router_contract.health_score import BREAKER_OPEN_SCORE, MIN_STREAK, current_score
from router_contract.readers.health import fleet_health
from router_contract.snapshot_keys import record_key
from router_service import domain
from router_service.errors import ErrorClass
from router_service.fleet.config import FleetConfig
from router_service.fleet.view import Topic, build_view
from router_service.resilience.breaker import BreakerConfig
from router_service.resilience.live_state import LiveState, LiveStateConfig
from router_service.telemetry import event_codec
from router_service.telemetry import events as ev
from tests.telemetry import helpers as th

T0 = 1_795_046_400.0  # a multiple of every slot size used here
KEY = "openai/gpt-4o"
FLEET = FleetConfig()


def _ok() -> ce.Attempt:
    return ce.Attempt("openai", "gpt-4o", "success", latency_ms=100)


def _err(error_class: str = "bad_response", cooldown_ms: int | None = None) -> ce.Attempt:
    return ce.Attempt("openai", "gpt-4o", "error", error_class, 5, breaker_cooldown_ms=cooldown_ms)


def _event(attempt: ce.Attempt, i: int, time_s: float, router: str = "r1") -> ce.Event:
    envelope = ce.Envelope(f"e{i}", time_s, f"req-{i}", router_instance=router)
    return ce.Event(envelope, attempt)


def _latest(history: list[tuple[float, ce.Attempt]], partitions: int = 1) -> dict[str, object]:
    """Snapshot values of `history` spread round-robin over `partitions` aggregators."""
    latest: dict[str, object] = {}
    for partition in range(partitions):
        aggregator = HealthAggregator()
        for i, (time_s, attempt) in enumerate(history):
            if i % partitions == partition:
                aggregator.apply(_event(attempt, i, time_s), i)
        for record in aggregator.changes(T0):
            latest[record_key(record.key, partition)] = record.value
    return latest


def _fleet_score(history: list[tuple[float, ce.Attempt]], now_s: float, partitions: int = 1) -> float:
    return float(fleet_health(_latest(history, partitions), now_s=now_s)[KEY]["health_score"])  # type: ignore[arg-type]


# --- the cap ------------------------------------------------------------------------------------


def test_the_issue_case_demotes_200_successes_then_7_failures() -> None:
    """Issue 19: 0.954 before (diluted by the successes), now below the 0.9 threshold."""
    history = [(T0 + i * 0.1, _ok()) for i in range(200)] + [(T0 + 30 + i, _err()) for i in range(7)]
    value = _latest(history)[record_key(KEY, 0)]
    assert isinstance(value, dict)
    assert value["current"] == {"failing": True, "failures_since_success": 7, "open_breakers": []}
    assert value["health_score"] == round(5 / 12, 4)
    assert FLEET.traffic_share(value["health_score"]) < 1.0


# (outcomes oldest first: "s" success, "e" provider error, "c" caller error, "x" cancelled; score)
# Each score is min(the window's availability (successes + 5) / (judged + 5), the streak's cap).
STREAKS = [
    ("s" * 50 + "ee", round(55 / 57, 4)),  # two in a row: a healthy deployment's ordinary noise
    ("s" * 50 + "eee", round(5 / 8, 4)),
    ("s" * 50 + "eecxe", round(5 / 8, 4)),  # caller errors and cancellations neither count nor reset
    ("s" * 50 + "eeees", round(56 / 60, 4)),  # one success lifts the cap
    ("e" * 100, round(5 / 105, 4)),  # the window is worse than the capped streak's 5/37 here
]


@pytest.mark.parametrize(("outcomes", "score"), STREAKS)
def test_failures_since_the_last_success_cap_the_score(outcomes: str, score: float) -> None:
    kinds = {"s": _ok(), "e": _err(), "c": _err("invalid_request"), "x": _err("cancelled")}
    history = [(T0 + i * 0.1, kinds[o]) for i, o in enumerate(outcomes)]
    assert _fleet_score(history, T0 + 60) == score


def test_an_open_breaker_caps_the_score_until_its_cooldown_ends() -> None:
    history = [(T0 + i * 0.1, _ok()) for i in range(100)] + [(T0 + 20, _err(cooldown_ms=30_000))]
    assert _fleet_score(history, T0 + 21) == BREAKER_OPEN_SCORE
    summary = fleet_health(_latest(history), now_s=T0 + 21)[KEY]  # type: ignore[arg-type]
    assert summary["current"]["open_breakers"] == ["r1"]
    assert _fleet_score(history, T0 + 50.5) == round(105 / 106, 4)  # over; one failure is no streak
    # Someone's success after the report: the deployment answers again.
    assert _fleet_score([*history, (T0 + 25, _ok())], T0 + 26) == round(106 / 107, 4)


def test_a_late_success_from_before_the_failures_lifts_nothing() -> None:
    history = [(T0 + 10 + i, _err()) for i in range(MIN_STREAK)] + [(T0 + 5, _ok())]
    assert _fleet_score(history, T0 + 20) == round(5 / 8, 4)


outcome = st.sampled_from(["success", "error", "caller", "cancelled"])


@settings(max_examples=200, deadline=None)
@given(
    older=st.lists(outcome, max_size=120),
    failing=st.integers(MIN_STREAK, 40),
    partitions=st.integers(1, 4),
    breaker=st.booleans(),
)
def test_the_last_k_attempts_failing_always_demotes(
    older: list[str], failing: int, partitions: int, breaker: bool
) -> None:
    """Whatever came before, the last K >= MIN_STREAK attempts failing scores below the
    threshold, on any number of input partitions (the fleet merge)."""
    kinds = {
        "success": _ok(),
        "error": _err(),
        "caller": _err("invalid_request"),
        "cancelled": _err("cancelled"),
    }
    history = [(T0 + i * 0.5, kinds[o]) for i, o in enumerate(older)]
    start = T0 + len(older) * 0.5
    history += [(start + i * 0.5, _err(cooldown_ms=30_000 if breaker else None)) for i in range(failing)]
    score = _fleet_score(history, start + failing * 0.5, partitions)
    assert score < FLEET.demote_below
    if breaker:
        assert score <= BREAKER_OPEN_SCORE


times = st.lists(
    st.tuples(st.integers(0, 600), st.sampled_from(["s", "e", "b"]), st.sampled_from(["r1", "r2"])),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(events=times, cut=st.integers(0, 60))
def test_recent_state_merges_like_one_partition(events: list[tuple[int, str, str]], cut: int) -> None:
    """Split anyhow and merged in either order: the same as one partition that saw it all."""

    def build(items: list[tuple[int, str, str]]) -> Recent:
        recent = Recent()
        for tenth, kind, router in items:
            t = T0 + tenth / 10
            if kind == "s":
                recent.success(t)
            elif kind == "e":
                recent.failure(t)
            else:
                recent.failure(t)
                recent.breaker_opened(router, t, 30.0)
        return recent

    whole = build(events)
    left, right = build(events[:cut]), build(events[cut:])
    for a, b in ((left, right), (build(events[cut:]), build(events[:cut]))):
        a.merge(b)
        assert a.to_json() == whole.to_json()
        assert current_score(a, T0 + 30) == current_score(whole, T0 + 30)
    assert Recent.from_json(whole.to_json()).to_json() == whole.to_json()


def test_a_restored_consumer_keeps_what_is_failing_now() -> None:
    config = HealthConfig(window_s=60, slot_s=10)
    aggregator = HealthAggregator(config)
    for i in range(4):
        aggregator.apply(_event(_err(cooldown_ms=30_000 if i == 3 else None), i, T0 + i), i)
    value = aggregator.changes(T0)[0].value
    assert value is not None and value["current"]["failing"]
    restored = HealthAggregator(config)
    restored.restore(KEY, value, covered_offset=4)
    restored.restore_meta(aggregator.meta())
    assert restored.changes(T0)[0].value == value


def test_an_open_breaker_outlives_the_window_of_the_attempt_that_opened_it() -> None:
    aggregator = HealthAggregator(HealthConfig(window_s=60, slot_s=10))
    aggregator.apply(_event(_err("auth", cooldown_ms=300_000), 0, T0), 0)
    other = ce.Attempt("anthropic", "claude", "success", latency_ms=10)
    aggregator.apply(_event(other, 1, T0 + 120), 1)  # the auth failure's slot left the window
    values = {r.key: r.value for r in aggregator.changes(T0)}
    value = values[KEY]
    assert value is not None and value["slots"] == [] and value["current"]["open_breakers"] == ["r1"]
    aggregator.apply(_event(other, 2, T0 + 400), 2)  # the cooldown is over too
    assert {r.key: r.value for r in aggregator.changes(T0)}[KEY] is None


# --- the router's view ----------------------------------------------------------------------------


def test_the_router_demotes_a_breaker_report_below_min_attempts_and_slides_streaks_away() -> None:
    # 4 failures, one opening router r1's breaker for 30 s: far fewer than min_attempts (10).
    history = [(T0 + i, _err(cooldown_ms=30_000 if i == 3 else None)) for i in range(4)]
    latest: dict[Topic, Any] = {Topic.HEALTH: _latest(history, partitions=2)}
    view = build_view(latest, frozenset(), T0 + 5, FLEET)
    health = view.health[KEY]
    assert (health.failing, health.open_breakers, health.score) == (True, ("r1",), BREAKER_OPEN_SCORE)
    assert FLEET.traffic_share(health.score) == FLEET.min_share
    # Cooldown over, the streak still counts; once it slid out of the router's 120 s window, the
    # 4 judged attempts are too few to say anything.
    assert view_score(latest, T0 + 40) == round(5 / 9, 4)
    assert KEY not in build_view(latest, frozenset(), T0 + 3 + FLEET.health_window_s + 31, FLEET).health


def view_score(latest: Mapping[Topic, Any], now_s: float) -> float:
    return build_view(latest, frozenset(), now_s, FLEET).health[KEY].score


# --- where the report comes from ----------------------------------------------------------------


def test_live_state_returns_the_cooldown_only_from_the_failure_that_opens_the_breaker() -> None:
    live = LiveState(LiveStateConfig(breaker=BreakerConfig(allowed_fails=2, cooldown_s=30.0)))
    opened = [live.record_failure(KEY, ErrorClass.OVERLOADED, 100.0 + i) for i in range(4)]
    assert opened == [None, None, 30.0, None]  # the 4th finds it open already
    # A probe that fails re-opens it for longer (cooldown_multiplier 2), and says so.
    assert live.try_acquire(KEY, 140.0)
    assert live.record_failure(KEY, ErrorClass.OVERLOADED, 140.5) == 60.0
    # A class whose rule is its own cooldown opens at once.
    assert live.record_failure("other/m", ErrorClass.AUTH, 1.0) is not None


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
def test_the_attempt_event_carries_the_breaker_report_and_the_router(encoding: str) -> None:
    attempt = th.attempt(breaker_cooldown_s=30.0)
    _, value, headers = event_codec.encode(
        th.event(ev.AttemptEvent(2, attempt, "m")),
        encoding,
        router_instance="host-42",  # type: ignore[arg-type]
    )
    decoded = decode(value, headers)
    assert decoded is not None and isinstance(decoded.body, ce.Attempt)
    assert (decoded.body.breaker_cooldown_ms, decoded.envelope.router_instance) == (30_000, "host-42")
    plain = decode(*_encoded(th.attempt(), encoding))
    assert plain is not None and isinstance(plain.body, ce.Attempt) and plain.body.breaker_cooldown_ms is None


def test_the_fast_json_spells_the_report_as_the_canonical_mapping_does() -> None:
    event = th.event(ev.AttemptEvent(2, th.attempt(breaker_cooldown_s=1.5), "m"))
    fast = json.loads(event_codec.encode(event, "json", router_instance="r")[1])
    canonical = json.loads(json_format.MessageToJson(event_codec.to_proto(event, router_instance="r")))
    assert fast["attempt"]["breakerCooldownMs"] == canonical["attempt"]["breakerCooldownMs"] == "1500"


def _encoded(attempt: domain.AttemptRecord, encoding: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    _, value, headers = event_codec.encode(th.event(ev.AttemptEvent(0, attempt, "m")), encoding)  # type: ignore[arg-type]
    return value, list(headers)
