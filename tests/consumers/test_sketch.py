from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_contract.sketch import LogHistogram


def _exact(values: list[float], q: float) -> float:
    """The value at rank q * (n - 1), rounded down: the one DDSketch's quantile is within 1% of."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99, 1.0])
def test_quantiles_are_within_the_relative_accuracy(q: float) -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(6, 1.2) for _ in range(5000)]
    sketch = LogHistogram(0.01)
    for value in values:
        sketch.add(value)
    exact = _exact(values, q)
    assert sketch.quantile(q) == pytest.approx(exact, rel=0.0101)


def test_merging_equals_adding_everything_to_one_sketch() -> None:
    rng = random.Random(3)
    values = [rng.uniform(0, 5000) for _ in range(1000)] + [0.0, 0.0]
    whole, left, right = LogHistogram(), LogHistogram(), LogHistogram()
    for i, value in enumerate(values):
        whole.add(value)
        (left if i % 3 else right).add(value)
    left.merge(right)
    assert left == whole
    assert left.count == len(values)


def test_json_round_trip_is_exact() -> None:
    sketch = LogHistogram(0.02)
    for value in (0, 1, 2, 3, 1000, 1000, 123456):
        sketch.add(value)
    assert LogHistogram.from_json(sketch.to_json()) == sketch


def test_an_empty_sketch_has_no_quantiles_and_zeros_are_zero() -> None:
    sketch = LogHistogram()
    assert sketch.quantile(0.5) is None
    sketch.add(0)
    assert sketch.quantile(0.99) == 0.0


def test_sketches_of_different_accuracy_do_not_merge() -> None:
    with pytest.raises(ValueError, match="relative accuracy"):
        LogHistogram(0.01).merge(LogHistogram(0.02))


_VALUES = st.lists(st.floats(min_value=0.0, max_value=1e7, allow_nan=False), max_size=60)


@settings(max_examples=150, deadline=None)
@given(_VALUES)
def test_json_round_trip_keeps_every_count(values: list[float]) -> None:
    sketch = LogHistogram()
    for value in values:
        sketch.add(value)
    restored = LogHistogram.from_json(sketch.to_json())
    assert restored.to_json() == sketch.to_json()
    assert restored.count == len(values)
    for q in (0.5, 0.95, 0.99):
        assert restored.quantile(q) == sketch.quantile(q)


@settings(max_examples=100, deadline=None)
@given(_VALUES, _VALUES)
def test_merging_is_order_independent(left_values: list[float], right_values: list[float]) -> None:
    def sketch_of(values: list[float]) -> LogHistogram:
        sketch = LogHistogram()
        for value in values:
            sketch.add(value)
        return sketch

    left_first, right_first = sketch_of(left_values), sketch_of(right_values)
    left_first.merge(sketch_of(right_values))
    right_first.merge(sketch_of(left_values))
    assert left_first == right_first == sketch_of(left_values + right_values)
