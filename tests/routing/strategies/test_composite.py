"""Composition: parsing, validation, the implicit round-robin tie-break, band chaining."""

from __future__ import annotations

import pytest

from router_service.routing.strategies import STRATEGIES, StrategyParams, compose


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ("cost", "cost>round_robin"),
        ("quality>cost", "quality>cost>round_robin"),
        ("quality > cost > weighted", "quality>cost>weighted"),
        ("latency>priority", "latency>priority"),
        ("round_robin", "round_robin"),
        ("priority", "priority"),
    ],
)
def test_label_names_every_step_including_the_implicit_tie_break(spec: str, label: str) -> None:
    assert compose(spec).label == label


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fastest", "unknown fastest"),
        ("cost>", "empty name"),
        ("round_robin>cost", "round_robin orders everything, so it must come last"),
        ("weighted>priority", "weighted orders everything"),
        ("cost>cost", "appears twice"),
    ],
)
def test_invalid_compositions_fail_with_a_precise_message(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compose(spec)


def test_registry_has_the_named_strategies() -> None:
    assert set(STRATEGIES) == {
        "round_robin",
        "weighted",
        "latency",
        "cost",
        "quality",
        "learned",
        "priority",
    }


def test_each_factory_builds_a_strategy_named_by_its_key() -> None:
    for name, factory in STRATEGIES.items():
        assert factory(StrategyParams()).name == name


def test_negative_tolerance_or_weight_is_rejected() -> None:
    with pytest.raises(ValueError, match="tolerances"):
        StrategyParams(cost_tolerance=-0.1)
    with pytest.raises(ValueError, match="negative weights for a"):
        StrategyParams(weights={"a": -1})
