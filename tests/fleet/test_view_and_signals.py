"""The fleet view from real consumer snapshot values, and how routing merges it with local state.

Pure: the snapshot values come from the consumers' own aggregators, so a change of their schema
breaks these tests rather than the router in production.
"""

from __future__ import annotations

import pytest

from consumers import events as ce
from consumers.health.aggregate import HealthAggregator
from consumers.quality.aggregate import QualityAggregator
from router_contract.snapshot_keys import record_key
from router_service.domain import TaskType
from router_service.errors import ErrorClass
from router_service.fleet.config import FleetConfig
from router_service.fleet.signals import FleetSignals
from router_service.fleet.tables import costs_table, health_table
from router_service.fleet.view import (
    DeploymentHealth,
    FleetView,
    QualityStats,
    Topic,
    build_view,
    stale_topics,
)
from router_service.resilience.live_state import LiveState
from tests.consumers.helpers import consumer_event

T0 = 1_795_046_400.0  # a multiple of the 30 s health slot
CONFIG = FleetConfig(min_attempts=10, min_feedback=5)
FRESH: frozenset[Topic] = frozenset()


def _health_values(attempts: list[ce.Attempt], time_s: float = T0, partition: int = 0) -> dict[str, object]:
    aggregator = HealthAggregator()
    for offset, attempt in enumerate(attempts):
        aggregator.apply(consumer_event(attempt, event_id=f"e{offset}", time_s=time_s), offset)
    return {record_key(r.key, partition): r.value for r in aggregator.changes(time_s)}


def _attempts(
    provider: str, successes: int, errors: int, error_class: str = "overloaded"
) -> list[ce.Attempt]:
    ok = [ce.Attempt(provider, "m", "success", latency_ms=200, ttft_ms=50) for _ in range(successes)]
    return ok + [ce.Attempt(provider, "m", "error", error_class, latency_ms=5) for _ in range(errors)]


def test_health_of_a_failing_deployment_merged_over_partitions() -> None:
    latest = {
        **_health_values(_attempts("bad", 0, 15), partition=0),
        **_health_values(_attempts("bad", 0, 15) + _attempts("good", 20, 0), partition=1),
    }
    view = build_view({Topic.HEALTH: latest}, FRESH, T0 + 1, CONFIG)
    bad, good = view.health["bad/m"], view.health["good/m"]
    assert bad.judged == 30 and bad.attempts == 30
    assert bad.score == pytest.approx(5 / 35, abs=1e-4)  # 30 provider errors against a prior of 5
    assert good.score == 1.0 and good.latency_p95_s == pytest.approx(0.2, rel=0.02)
    assert good.ttft_p95_s == pytest.approx(0.05, rel=0.02)


def test_too_few_judged_attempts_and_callers_own_errors_say_nothing() -> None:
    # 9 judged, and the newest a success: not failing now either (test_health_current.py).
    attempts = (
        _attempts("few", 0, 7) + _attempts("few", 2, 0) + _attempts("callers", 0, 50, "invalid_request")
    )
    view = build_view({Topic.HEALTH: _health_values(attempts)}, FRESH, T0 + 1, CONFIG)
    assert view.health == {}


def test_the_router_slides_the_health_window_by_its_own_clock() -> None:
    latest = _health_values(_attempts("bad", 0, 30))
    assert "bad/m" in build_view({Topic.HEALTH: latest}, FRESH, T0 + 100, CONFIG).health
    # The consumer saw no later event, so its record still holds these slots; the router's
    # 120 s window has moved past them.
    assert build_view({Topic.HEALTH: latest}, FRESH, T0 + 30 + 121, CONFIG).health == {}


def test_quality_needs_min_feedback_and_skips_unknown_tasks() -> None:
    aggregator = QualityAggregator()
    offset = 0
    for i, (model, task, score) in enumerate(
        [("x", "code", 0.1)] * 6 + [("y", "code", 0.9)] * 4 + [("x", "unspecified", 0.5)] * 6
    ):
        for body in (ce.Decision(task, f"p/{model}"), ce.Completion("p", model), ce.Feedback(score)):
            offset += 1
            # Each request made and scored by a key of its own: one key's scores would count as
            # one vote (router_contract/quality_scores.py).
            event = consumer_event(
                body, event_id=f"e{offset}", request_id=f"r{i}", time_s=T0, api_key_id=f"k{i}"
            )
            aggregator.apply(event, offset)
    latest = {record_key(r.key, 0): r.value for r in aggregator.changes(T0)}
    quality = build_view({Topic.QUALITY: latest}, FRESH, T0, CONFIG).quality
    assert set(quality) == {("x", TaskType.CODE)}  # y: 4 scores < min_feedback; "unspecified": no task
    stats = quality[("x", TaskType.CODE)]
    assert (stats.count, stats.mean) == (6, pytest.approx(0.1))
    assert stats.confidence == pytest.approx(6 / 16)


def test_stale_topics_are_left_out_of_the_view() -> None:
    newest = {Topic.HEALTH: T0 - 5, Topic.QUALITY: T0 - 60}
    stale = stale_topics(newest, T0, FleetConfig(stale_after_s=20))
    assert stale == {Topic.QUALITY, Topic.COSTS}  # costs: never read
    latest = {Topic.HEALTH: _health_values(_attempts("bad", 0, 30), time_s=T0 - 5)}
    view = build_view(latest, stale, T0, CONFIG)
    assert "bad/m" in view.health and view.quality == {} and view.stale == stale


@pytest.mark.parametrize(
    ("score", "share"),
    [(1.0, 1.0), (0.9, 1.0), (0.7, 0.5), (0.5, 0.02), (0.1, 0.02), (0.51, 0.025)],
)
def test_traffic_share_falls_linearly_from_demote_below_to_the_floor(score: float, share: float) -> None:
    assert FleetConfig(demote_below=0.9, floor_score=0.5, min_share=0.02).traffic_share(
        score
    ) == pytest.approx(share)


# --- signals: local state merged with the fleet view ----------------------------------------------


def _health(score: float, p95: float | None = 0.5) -> DeploymentHealth:
    return DeploymentHealth(score, judged=50, attempts=50, error_rate=0.0, latency_p95_s=p95, ttft_p95_s=None)


def test_fleet_health_demotes_without_excluding_and_local_cooldown_still_excludes() -> None:
    live = LiveState()
    signals = FleetSignals(live, CONFIG, FleetView(health={"bad/m": _health(0.2), "ok/m": _health(1.0)}))
    assert signals.ramping(0.0) == {"bad/m": 0.02}
    assert signals.unavailable_reasons(0.0) == {}  # still a fallback
    for _ in range(10):
        live.record_failure("bad/m", ErrorClass.OVERLOADED, 0.0)
    assert "bad/m" in signals.unavailable_reasons(0.0)  # this instance's own failures exclude it


def test_stale_view_means_local_state_only() -> None:
    signals = FleetSignals(LiveState(), CONFIG, FleetView(health={"bad/m": _health(0.2)}))
    signals.update(FleetView())  # what a stale health topic yields
    assert signals.ramping(0.0) == {} and signals.latency_p95s(["bad/m"], 0.0) == [None]


def test_local_latency_wins_and_the_fleet_fills_cold_deployments() -> None:
    live = LiveState()
    for _ in range(20):
        live.record_success("warm/m", 0.1, None, 0.0)
    view = FleetView(health={"warm/m": _health(1.0, p95=3.0), "cold/m": _health(1.0, p95=2.0)})
    signals = FleetSignals(live, CONFIG, view)
    local_p95, fleet_p95, unknown = signals.latency_p95s(["warm/m", "cold/m", "new/m"], 2.0)
    assert local_p95 == pytest.approx(0.1, rel=0.1)  # within the sketch's bucket
    assert fleet_p95 == 2.0 and unknown is None


def test_quality_moves_the_prior_toward_the_fleet_mean_by_confidence() -> None:
    signals = FleetSignals(LiveState(), CONFIG)
    assert signals.quality_view() is None  # no fleet data: the planner skips the lookups
    signals.update(
        FleetView(quality={("m", TaskType.CODE): QualityStats(mean=0.2, count=30, confidence=0.75)})
    )
    assert signals.quality_view() is signals
    assert signals.quality("prov/m", TaskType.CODE, 0.8) == pytest.approx(0.75 * 0.2 + 0.25 * 0.8)
    assert signals.quality("prov/m", TaskType.CHAT, 0.8) == 0.8
    assert signals.quality("prov/other", TaskType.CODE, 0.6) == 0.6


# --- tables for routerctl ---------------------------------------------------------------------------


def test_health_table_shows_score_share_and_staleness() -> None:
    view = FleetView(health={"bad/m": _health(0.2), "ok/m": _health(1.0)}, stale=frozenset({Topic.COSTS}))
    rows = {line.split()[0]: line.split() for line in health_table(view, FleetConfig()).splitlines()[1:]}
    assert rows["bad/m"][1:3] == ["0.200", "0.02"] and rows["ok/m"][1:3] == ["1.000", "1.00"]
    assert "no fresh snapshot" in health_table(FleetView(), FleetConfig())


def test_costs_table_sums_partitions_exactly_with_the_fleet_total_first() -> None:
    from consumers.costs.aggregate import CostsAggregator

    values: dict[str, object] = {}
    for partition, cost in enumerate((1, 10**12 + 7)):  # far beyond a float's exact range when summed
        aggregator = CostsAggregator()
        completion = ce.Completion("p", "m", cost_nanos_usd=cost, input_tokens=5, output_tokens=2)
        aggregator.apply(consumer_event(completion, event_id=f"e{partition}", time_s=T0, team="search"), 1)
        values.update({record_key(r.key, partition): r.value for r in aggregator.changes(T0)})
    view = build_view({Topic.COSTS: values}, FRESH, T0, CONFIG)  # type: ignore[dict-item]
    lines = costs_table(view, "hour", T0 + 10).splitlines()
    assert lines[2].split()[:3] == ["total=all", "2", "1000.000000008"]
    assert any(line.split()[:3] == ["team=search", "2", "1000.000000008"] for line in lines)
