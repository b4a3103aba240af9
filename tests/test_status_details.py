from __future__ import annotations

import pytest

from router_service.status_details import retry_info


@pytest.mark.parametrize(
    ("delay_s", "expected"),
    [
        (1.0, (1, 0)),
        (0.3, (0, 300_000_000)),  # truncating 0.3's float fraction gives 299_999_999
        (2.25, (2, 250_000_000)),
        (3600.5, (3600, 500_000_000)),
        (0.9999999999, (1, 0)),  # rounds up into the next second, never nanos == 1e9
        (0.0, (0, 0)),
    ],
)
def test_retry_info_rounds_to_the_nanosecond(delay_s: float, expected: tuple[int, int]) -> None:
    delay = retry_info(delay_s).retry_delay
    assert (delay.seconds, delay.nanos) == expected
