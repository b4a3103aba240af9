"""What is left of the chain after a failure, by error class."""

from __future__ import annotations

import pytest

from router_service.routing.fallback import remaining_chain
from tests.routing.factories import catalog, deployment

CAT = catalog(
    deployment("a/small", context_window=8_000),
    deployment("b/mid", context_window=32_000),
    deployment("c/small2", context_window=8_000),
    deployment("d/big", context_window=200_000),
)
CHAIN = ("a/small", "b/mid", "c/small2", "d/big")


@pytest.mark.parametrize(
    ("failed", "larger", "tried", "rest"),
    [
        ("a/small", False, (), ("b/mid", "c/small2", "d/big")),
        ("a/small", True, (), ("b/mid", "d/big")),  # context length: only larger windows help
        ("b/mid", True, (), ("d/big",)),
        ("d/big", False, (), ()),
        ("a/small", False, ("b/mid",), ("c/small2", "d/big")),
        ("x/unknown", False, (), CHAIN),
    ],
)
def test_remaining_chain(failed: str, larger: bool, tried: tuple[str, ...], rest: tuple[str, ...]) -> None:
    assert remaining_chain(CHAIN, failed, CAT, larger_context=larger, tried=tried) == rest
