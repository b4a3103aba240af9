"""LatencySketch: quantiles within the relative accuracy, cold below min_samples, rolling window,
and the same numbers as the consumers' sketch."""

from __future__ import annotations

import random

import pytest

from router_contract.sketch import LogHistogram
from router_service.resilience.latency_sketch import LatencySketch, SketchConfig


def exact(samples: list[float], q: float) -> float:
    """The sample at rank q * (n - 1), rounded down: the one DDSketch's quantile is within 1% of."""
    ordered = sorted(samples)
    return ordered[int(q * (len(ordered) - 1))]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_are_within_the_relative_accuracy(seed: int) -> None:
    rng = random.Random(seed)
    samples = [rng.lognormvariate(0, 0.8) for _ in range(5_000)]
    sketch = LatencySketch(SketchConfig())
    for s in samples:
        sketch.record(s, 0.0)
    result = sketch.quantiles(0.0)
    assert result is not None and result.count == 5_000
    for estimate, q in ((result.p50_s, 0.5), (result.p95_s, 0.95), (result.p99_s, 0.99)):
        truth = exact(samples, q)
        assert estimate == pytest.approx(truth, rel=0.0101)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_router_p95_is_the_consumers_p95(seed: int) -> None:
    """Routing fills a cold local P95 with the fleet's (fleet/signals.py): both are one sketch."""
    rng = random.Random(seed)
    samples = [rng.lognormvariate(-1, 1.0) for _ in range(2_000)]
    router, consumer = LatencySketch(SketchConfig()), LogHistogram()
    for s in samples:
        router.record(s, 0.0)
        consumer.add(s)
    result = router.quantiles(0.0)
    assert result is not None
    assert result.p95_s == pytest.approx(consumer.quantile(0.95), rel=1e-9)
    assert result.p50_s == pytest.approx(consumer.quantile(0.5), rel=1e-9)


def test_no_quantiles_below_min_samples() -> None:
    sketch = LatencySketch(SketchConfig(min_samples=3))
    sketch.record(0.1, 0.0)
    sketch.record(0.2, 0.0)
    assert sketch.quantiles(0.0) is None
    sketch.record(0.3, 0.0)
    assert sketch.quantiles(0.0) is not None


def test_old_samples_leave_the_window() -> None:
    sketch = LatencySketch(SketchConfig(window_s=60, slots=6, min_samples=1))
    for _ in range(10):
        sketch.record(5.0, 0.0)
    for _ in range(10):
        sketch.record(0.1, 55.0)
    p95_before = sketch.quantiles(55.0)
    p95_after = sketch.quantiles(65.0)
    assert p95_before is not None and p95_before.p95_s >= 5.0
    assert p95_after is not None and p95_after.p95_s == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize(("seconds", "clamped"), [(0.0, 0.001), (-1.0, 0.001), (10_000.0, 600.0)])
def test_out_of_range_samples_are_clamped_to_the_range(seconds: float, clamped: float) -> None:
    sketch = LatencySketch(SketchConfig(min_samples=1))
    sketch.record(seconds, 0.0)
    result = sketch.quantiles(0.0)
    assert result is not None
    assert result.p50_s == pytest.approx(clamped, rel=0.0101)


def test_a_clock_step_back_keeps_counting_into_the_current_slot() -> None:
    sketch = LatencySketch(SketchConfig(window_s=60, slots=6, min_samples=1))
    sketch.record(1.0, 30.0)
    sketch.record(1.0, 5.0)  # backwards: counted, nothing resurrected or cleared
    result = sketch.quantiles(30.0)
    assert result is not None and result.count == 2


def test_a_gap_longer_than_the_window_clears_everything() -> None:
    sketch = LatencySketch(SketchConfig(window_s=60, slots=6, min_samples=1))
    for t in range(0, 60, 10):
        sketch.record(1.0, float(t))
    assert sketch.quantiles(125.0) is None
