"""LatencySketch: quantiles within the bucket error, cold below min_samples, rolling window, cache."""

from __future__ import annotations

import random

import pytest

from router_service.resilience.latency_sketch import LatencySketch, SketchConfig


def exact(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_are_within_the_bucket_error_above_the_true_value(seed: int) -> None:
    rng = random.Random(seed)
    samples = [rng.lognormvariate(0, 0.8) for _ in range(5_000)]
    sketch = LatencySketch(SketchConfig())
    for s in samples:
        sketch.record(s, 0.0)
    result = sketch.quantiles(0.0)
    assert result is not None and result.count == 5_000
    for estimate, q in ((result.p50_s, 0.5), (result.p95_s, 0.95), (result.p99_s, 0.99)):
        truth = exact(samples, q)
        assert truth * 0.97 <= estimate <= truth * 1.12


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


@pytest.mark.parametrize(("seconds", "bucket_edge"), [(0.0, 0.001), (-1.0, 0.001), (10_000.0, None)])
def test_out_of_range_samples_land_in_the_edge_buckets(seconds: float, bucket_edge: float | None) -> None:
    sketch = LatencySketch(SketchConfig(min_samples=1))
    sketch.record(seconds, 0.0)
    result = sketch.quantiles(0.0)
    assert result is not None
    if bucket_edge is not None:
        assert result.p50_s == bucket_edge
    else:
        assert result.p50_s >= 600.0
