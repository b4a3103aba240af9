"""QuantileBoard: published P95s, refreshed when due, staggered, absent without enough data."""

from __future__ import annotations

import pytest

from router_service.resilience.latency_sketch import LatencySketch, SketchConfig
from router_service.resilience.quantile_board import QuantileBoard


def sketch_with(seconds: float, samples: int, now: float = 0.0) -> LatencySketch:
    sketch = LatencySketch(SketchConfig(min_samples=5))
    for _ in range(samples):
        sketch.record(seconds, now)
    return sketch


def test_a_tracked_deployment_is_published_on_the_next_refresh() -> None:
    board = QuantileBoard(refresh_s=1.0)
    board.track("a/x", sketch_with(0.5, 10), sketch_with(0.1, 10), now=0.0)
    assert board.latency == {}
    board.refresh(0.0)
    assert board.latency["a/x"] == pytest.approx(0.5, rel=0.1)
    assert board.ttft["a/x"] == pytest.approx(0.1, rel=0.1)


def test_too_little_data_publishes_nothing() -> None:
    board = QuantileBoard(refresh_s=1.0)
    board.track("a/x", sketch_with(0.5, 4), sketch_with(0.1, 0), now=0.0)
    board.refresh(0.0)
    assert (board.latency, board.ttft) == ({}, {})


def test_values_are_kept_until_due_then_refreshed() -> None:
    latency = sketch_with(0.5, 10)
    board = QuantileBoard(refresh_s=1.0)
    board.track("a/x", latency, sketch_with(0.1, 0), now=0.0)
    board.refresh(0.0)
    for _ in range(200):
        latency.record(5.0, 0.2)
    board.refresh(0.4)
    assert board.latency["a/x"] == pytest.approx(0.5, rel=0.1)
    board.refresh(1.5)
    assert board.latency["a/x"] == pytest.approx(5.0, rel=0.1)


def test_zero_refresh_interval_refreshes_on_every_call_without_looping() -> None:
    latency = sketch_with(0.5, 10)
    board = QuantileBoard(refresh_s=0.0)
    board.track("a/x", latency, sketch_with(0.1, 0), now=0.0)
    board.refresh(0.0)
    for _ in range(200):
        latency.record(5.0, 0.0)
    board.refresh(0.0)
    assert board.latency["a/x"] == pytest.approx(5.0, rel=0.1)
