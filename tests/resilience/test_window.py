"""SlidingWindow: counts per sub-window, expiry as time moves, bounded by the slot count."""

from __future__ import annotations

import pytest

from router_service.resilience.window import SlidingWindow


def test_totals_cover_the_live_slots_only() -> None:
    window = SlidingWindow(window_s=10.0, slots=5, width=2)  # 2 s slots
    window.add(0.0, 0)
    window.add(1.9, 0)
    window.add(3.0, 1, amount=5)
    assert list(window.totals(3.0)) == [2, 5]
    assert list(window.totals(9.9)) == [2, 5]  # slot [0, 2) still live (epoch 0..4)
    assert list(window.totals(10.0)) == [0, 5]  # slot [0, 2) expired
    assert list(window.totals(14.0)) == [0, 0]


def test_a_long_gap_clears_everything() -> None:
    window = SlidingWindow(10.0, 5, 1)
    window.add(0.0, 0, amount=3)
    assert window.total(1_000.0, 0) == 0
    window.add(1_000.0, 0)
    assert window.total(1_000.5, 0) == 1


def test_a_clock_going_backwards_keeps_counting_into_the_current_slot() -> None:
    window = SlidingWindow(10.0, 5, 1)
    window.add(5.0, 0)
    window.add(4.0, 0)  # earlier than the current slot
    assert window.total(5.0, 0) == 2


@pytest.mark.parametrize(("window_s", "slots", "width"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_invalid_shapes(window_s: float, slots: int, width: int) -> None:
    with pytest.raises(ValueError):
        SlidingWindow(window_s, slots, width)
