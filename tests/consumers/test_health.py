"""Provider health: slot counting, the score formula, the rolling window, JSON and the fleet merge."""

from __future__ import annotations

import pytest

from consumers import events as ce
from consumers.health.aggregate import HealthAggregator, HealthConfig
from router_contract.health_score import ScoreConfig, health_score
from router_contract.health_slots import Slot
from router_contract.readers.health import fleet_health
from router_contract.snapshot_keys import record_key
from tests.consumers.helpers import consumer_event

T0 = 1_795_046_400.0  # a multiple of every slot size used here


def _attempt(
    outcome: str = "success", error_class: str = "unspecified", latency_ms: int = 100, **kw: object
) -> ce.Attempt:
    return ce.Attempt("openai", "gpt-4o", outcome, error_class, latency_ms, **kw)  # type: ignore[arg-type]


def _slot(successes: int, errors: dict[str, int], latency_ms: int = 100, cancelled: int = 0) -> Slot:
    slot = Slot(0.01)
    for _ in range(successes):
        slot.add(_attempt(latency_ms=latency_ms))
    for error_class, count in errors.items():
        for _ in range(count):
            slot.add(_attempt("error", error_class))
    for _ in range(cancelled):
        slot.add(_attempt("cancelled", "cancelled"))
    return slot


# (successes, errors by class, success latency, cancelled, expected score)
SCORE_TABLE = [
    (0, {}, 100, 0, 1.0),  # no evidence: the prior says healthy
    (10, {}, 100, 0, 1.0),
    (0, {"overloaded": 1}, 100, 0, round(5 / 6, 4)),
    (0, {"timeout": 10}, 100, 0, round(5 / 15, 4)),
    (90, {"rate_limited": 10}, 100, 0, round(95 / 105, 4)),
    (
        10,
        {"invalid_request": 50, "context_length_exceeded": 5, "content_filtered": 5},
        100,
        0,
        1.0,
    ),  # caller's fault
    (10, {}, 100, 40, 1.0),  # lost hedges say nothing about the provider
    (10, {}, 60_000, 0, 0.5),  # p95 twice the 30 s SLO
    (0, {"auth": 5}, 60_000, 0, 0.5),  # no successes: no latency evidence either
]


@pytest.mark.parametrize(("successes", "errors", "latency_ms", "cancelled", "score"), SCORE_TABLE)
def test_health_score(
    successes: int, errors: dict[str, int], latency_ms: int, cancelled: int, score: float
) -> None:
    assert health_score(
        _slot(successes, errors, latency_ms, cancelled), ScoreConfig(latency_slo_ms=30_000)
    ) == pytest.approx(score, abs=6e-3)


def test_a_slot_counts_outcomes_and_keeps_latency_of_successes_only() -> None:
    slot = Slot(0.01)
    slot.add(_attempt(latency_ms=200, ttft_ms=50))
    slot.add(_attempt("error", "timeout", latency_ms=30_000))
    slot.add(_attempt("cancelled", "cancelled", latency_ms=10))
    assert (slot.attempts, slot.successes, slot.cancelled, slot.errors) == (3, 1, 1, {"timeout": 1})
    assert slot.latency_ms.count == 1 and slot.latency_ms.quantile(0.99) == pytest.approx(200, rel=0.01)
    assert slot.ttft_ms.quantile(0.5) == pytest.approx(50, rel=0.01)


def _feed(aggregator: HealthAggregator, attempts: list[tuple[float, ce.Attempt]]) -> None:
    for offset, (time_s, attempt) in enumerate(attempts):
        aggregator.apply(consumer_event(attempt, event_id=f"a{offset}", time_s=time_s), offset)


def test_the_window_rolls_and_an_idle_deployment_becomes_a_tombstone() -> None:
    aggregator = HealthAggregator(HealthConfig(window_s=60, slot_s=10))
    _feed(aggregator, [(T0, _attempt()), (T0 + 5, _attempt("error", "overloaded"))])
    value = aggregator.changes(T0)[0].value
    assert value is not None and (value["attempts"], value["errors"]) == (2, {"overloaded": 1})
    other = ce.Attempt("anthropic", "claude", "success", latency_ms=10)
    _feed(aggregator, [(T0 + 65, other)])  # the first deployment's slots fall out of the window
    changes = {record.key: record.value for record in aggregator.changes(T0 + 65)}
    assert changes["openai/gpt-4o"] is None
    assert changes["anthropic/claude"] is not None
    late = consumer_event(_attempt(), event_id="late", time_s=T0 + 1)
    assert aggregator.apply(late, 99) is False


def test_snapshot_fields_and_round_trip() -> None:
    aggregator = HealthAggregator(HealthConfig(window_s=60, slot_s=10))
    _feed(aggregator, [(T0 + i, _attempt(latency_ms=100 + i)) for i in range(20)])
    value = aggregator.changes(T0)[0].value
    assert value is not None
    assert value["kind"] == "provider_health"
    assert value["dimension"] == {"provider": "openai", "model": "gpt-4o"}
    assert value["window"] == {
        "start": "2026-11-18T23:59:20.000Z",
        "end": "2026-11-19T00:00:19.000Z",
        "seconds": 60,
        "slot_seconds": 10,
    }
    assert value["request_rate_per_s"] == pytest.approx(20 / 59, rel=1e-3)
    assert value["latency_ms"]["p50"] == pytest.approx(109, rel=0.011)
    assert value["ttft_ms"]["p50"] is None
    assert value["health_score"] == 1.0
    restored = HealthAggregator(HealthConfig(window_s=60, slot_s=10))
    restored.restore("openai/gpt-4o", value, covered_offset=20)
    restored.restore_meta(aggregator.meta())
    again = restored.changes(T0)[0].value
    assert again == value


def test_the_fleet_view_merges_partitions_like_one_aggregator() -> None:
    config = HealthConfig(window_s=60, slot_s=10)
    attempts = [
        (T0 + i, _attempt("error", "timeout") if i % 4 == 0 else _attempt(latency_ms=50 * i))
        for i in range(40)
    ]
    whole = HealthAggregator(config)
    _feed(whole, attempts)
    latest: dict[str, object] = {}
    for partition in (0, 1):
        part = HealthAggregator(config)
        _feed(part, attempts[partition::2])
        for record in part.changes(T0):
            latest[record_key(record.key, partition)] = record.value
    merged = fleet_health(latest)["openai/gpt-4o"]  # type: ignore[arg-type]
    expected = whole.changes(T0)[0].value
    assert expected is not None
    for field in ("attempts", "successes", "errors", "latency_ms", "health_score", "error_rate"):
        assert merged[field] == expected[field], field
