"""CandidateTable: columns in configuration order, prices scaled exactly."""

from __future__ import annotations

import pytest

from router_service.catalog import Price
from router_service.domain import DataSensitivity, TaskType
from router_service.routing.candidate import TASK_INDEX, CandidateTable
from tests.routing.factories import deployment


def test_columns_follow_the_deployments() -> None:
    a = deployment("a/x", max_sensitivity=DataSensitivity.RESTRICTED, quality={TaskType.CODE: 0.9})
    b = deployment("b/y", context_window=8_000, default_quality=0.3)
    table = CandidateTable([a, b], [None, "region"], pinned_count=1)
    assert table.keys == ("a/x", "b/y")
    assert table.index_of == {"a/x": 0, "b/y": 1}
    assert table.context_windows == (128_000, 8_000)
    assert table.sensitivity_ranks == (2, 1)
    assert table.static_reasons == (None, "region")
    assert table.quality_by_task[TASK_INDEX[TaskType.CODE]] == (0.9, 0.3)
    assert (len(table), table.pinned_count) == (2, 1)


@pytest.mark.parametrize(
    ("prices", "unit", "scaled_input"),
    [
        ([Price(150_000_000, 600_000_000, 75_000_000)], 1, (150,)),  # whole nano-USD per token
        ([Price(37_500_000, 150_000_000, 3_750_000)], 4, (150,)),  # quarter nanos
        ([Price(123_456_789, 1, 0)], 1_000_000, (123_456_789,)),  # no common factor
        ([Price(0, 0, 0)], 1, (0,)),
    ],
)
def test_prices_are_scaled_by_their_common_factor_with_a_million(
    prices: list[Price], unit: int, scaled_input: tuple[int, ...]
) -> None:
    table = CandidateTable(
        [deployment(f"p{i}/m", price=p) for i, p in enumerate(prices)], [None] * len(prices)
    )
    assert (table.price_unit, table.input_prices) == (unit, scaled_input)
