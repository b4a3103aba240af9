"""Exact cost arithmetic."""

from __future__ import annotations

import pytest

from router_service.catalog import Price
from router_service.domain import Usage

PRICE = Price(
    input_nanos_per_mtok=150_000_000,
    output_nanos_per_mtok=600_000_000,
    cached_input_nanos_per_mtok=75_000_000,
)


@pytest.mark.parametrize(
    ("usage", "nanos"),
    [
        (Usage(0, 0, 0), 0),
        (Usage(1_000_000, 0, 0), 150_000_000),
        (Usage(1000, 500, 200), 435_000),  # 800*0.15 + 200*0.075 + 500*0.60 per Mtok
        (Usage(1, 0, 0), 150),
        (Usage(0, 1, 0), 600),
        (Usage(3, 0, 3), 225),  # all cached
        (Usage(2, 0, 5), 150),  # cached never exceeds input
    ],
)
def test_cost_is_exact_integer_nanos(usage: Usage, nanos: int) -> None:
    assert PRICE.cost_nanos(usage) == nanos


def test_fractional_nanos_round_up_once_per_call() -> None:
    cheap = Price(input_nanos_per_mtok=1, output_nanos_per_mtok=1, cached_input_nanos_per_mtok=1)
    assert cheap.cost_nanos(Usage(1, 1, 0)) == 1  # 2e-6 nano-USD rounds up to one nano
    assert cheap.cost_nanos(Usage(999_999, 1, 0)) == 1
    assert cheap.cost_nanos(Usage(1_000_000, 1, 0)) == 2
