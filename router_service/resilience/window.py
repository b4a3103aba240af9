"""A time-bucketed sliding window of counters: bounded memory, O(1) updates.

The window is split into `slots` sub-windows of `window_s / slots` seconds each; a slot is
cleared when time moves past it, so the totals cover between `(slots - 1) / slots` and all of
`window_s` of history. This is the usual trade (Finagle, Hystrix, Envoy): a little staleness at
the edge of the window in exchange for constant memory and no per-sample timestamps.

Each slot holds `width` counters (histogram buckets, error classes...). `totals` is maintained
incrementally, so reading it costs nothing; expiring a slot costs O(width), once per slot period.
Time is always passed in.
"""

from __future__ import annotations

from collections.abc import Sequence


class SlidingWindow:
    __slots__ = ("_epoch", "_slot_s", "_slots", "_totals", "_width")

    def __init__(self, window_s: float, slots: int, width: int) -> None:
        if window_s <= 0 or slots < 1 or width < 1:
            raise ValueError("window_s must be > 0, slots and width >= 1")
        self._slot_s = window_s / slots
        self._width = width
        self._slots = [[0] * width for _ in range(slots)]
        self._totals = [0] * width
        self._epoch: int | None = None  # absolute index of the current slot: int(now // slot_s)

    def add(self, now: float, index: int, amount: int = 1) -> None:
        self._advance(now)
        assert self._epoch is not None
        self._slots[self._epoch % len(self._slots)][index] += amount
        self._totals[index] += amount

    def totals(self, now: float) -> Sequence[int]:
        """Per-counter sums over the window. A live view: copy it before the next `add`."""
        self._advance(now)
        return self._totals

    def total(self, now: float, index: int) -> int:
        self._advance(now)
        return self._totals[index]

    def _advance(self, now: float) -> None:
        epoch = int(now // self._slot_s)
        current = self._epoch
        if epoch == current:
            return
        if current is None or epoch - current >= len(self._slots):
            self._clear_all()
        elif epoch < current:
            # The clock went backwards (tests, NTP steps): keep counting into the current slot
            # rather than resurrecting expired ones.
            return
        else:
            for expired in range(current + 1, epoch + 1):
                self._clear_slot(expired % len(self._slots))
        self._epoch = epoch

    def _clear_slot(self, position: int) -> None:
        row = self._slots[position]
        totals = self._totals
        for i, count in enumerate(row):
            if count:
                totals[i] -= count
                row[i] = 0

    def _clear_all(self) -> None:
        for row in self._slots:
            row[:] = [0] * self._width
        self._totals[:] = [0] * self._width
