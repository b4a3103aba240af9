"""SlidingWindow and RetryBudget against plain models that keep every event, over random event
sequences (times that mostly move forward, sometimes jump past the window, sometimes step back).

The window's contract: totals(now) is the sum of exactly the adds whose slot is one of the last
`slots` slots (a slot is `window_s / slots` seconds, numbered floor(t / slot_s)); an add at a time
earlier than the newest slot seen counts into that newest slot. The budget's: a spend succeeds
exactly when ratio * requests + min_per_s * window_s - spends, all over the window, is at least 1;
so right after any spend the window's spends are within ratio * requests + the floor. Measured
later, a window can hold spends whose requests have already aged out of it (requests and spends
expire alike), so the bound over any window is ratio * the requests of that window and the one
before it, + the floor."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.resilience.retry import RetryBudget, RetryBudgetConfig
from router_service.resilience.window import SlidingWindow

PROPERTY = settings(max_examples=200, deadline=None)

# Time steps: mostly within a slot or two, some past the whole window, a few backwards.
steps = st.one_of(
    st.floats(0, 0.6, allow_nan=False),
    st.sampled_from([1.0, 2.5, 9.99, 10.0, 25.0]),
    st.floats(-1.5, 0, allow_nan=False),
)


@dataclass
class EventLog:
    """Every (slot, counter, amount) ever added, the slot being the newest one seen at the time."""

    slot_s: float
    slots: int
    newest: int | None = None
    events: list[tuple[int, int, int]] = field(default_factory=list)

    def see(self, now: float) -> int:
        slot = int(now // self.slot_s)
        if self.newest is None or slot > self.newest:
            self.newest = slot
        return self.newest

    def add(self, now: float, index: int, amount: int = 1) -> None:
        self.events.append((self.see(now), index, amount))

    def total(self, now: float, index: int, windows: int = 1) -> int:
        """The sum over the last `windows` windows' worth of slots."""
        newest = self.see(now)
        oldest = newest - windows * self.slots
        return sum(a for s, i, a in self.events if i == index and oldest < s <= newest)


@PROPERTY
@given(
    slots=st.integers(1, 6),
    window_s=st.sampled_from([1.0, 3.0, 10.0]),
    events=st.lists(st.tuples(steps, st.integers(0, 2), st.integers(0, 5)), max_size=80),
)
def test_window_totals_are_the_sum_over_the_last_slots(
    slots: int, window_s: float, events: list[tuple[float, int, int]]
) -> None:
    window = SlidingWindow(window_s, slots, 3)
    log = EventLog(window_s / slots, slots)
    now = 100.0
    for step, index, amount in events:
        now = max(0.0, now + step)
        window.add(now, index, amount)
        log.add(now, index, amount)
        assert list(window.totals(now)) == [log.total(now, i) for i in range(3)]
        assert window.total(now, index) == log.total(now, index)


BUDGET = RetryBudgetConfig(ratio=0.2, min_per_s=0.5, window_s=10.0, window_slots=5)
FLOOR = BUDGET.min_per_s * BUDGET.window_s


@PROPERTY
@given(events=st.lists(st.tuples(steps, st.sampled_from(["request", "spend"])), max_size=120))
def test_retry_budget_spends_exactly_what_ratio_and_floor_allow(events: list[tuple[float, str]]) -> None:
    budget = RetryBudget(BUDGET)
    log = EventLog(BUDGET.window_s / BUDGET.window_slots, BUDGET.window_slots)
    requests, spends = 0, 1
    now = 50.0
    for step, event in events:
        now = max(0.0, now + step)
        if event == "request":
            budget.record_request(now)
            log.add(now, requests)
            continue
        allowed = BUDGET.ratio * log.total(now, requests) + FLOOR - log.total(now, spends) >= 1.0
        assert budget.try_spend(now) == allowed
        if allowed:
            log.add(now, spends)
            assert log.total(now, spends) <= BUDGET.ratio * log.total(now, requests) + FLOOR
        # Whatever the interleaving, a window never holds more than ratio * (its requests and
        # those of the window before) + the floor.
        assert log.total(now, spends) <= BUDGET.ratio * log.total(now, requests, windows=2) + FLOOR
        expected = BUDGET.ratio * log.total(now, requests) + FLOOR - log.total(now, spends)
        assert budget.available(now) == expected


@PROPERTY
@given(requests_per_s=st.integers(0, 40), seconds=st.integers(1, 60))
def test_a_retry_storm_is_capped_at_ratio_plus_floor(requests_per_s: int, seconds: int) -> None:
    """Every request fails and asks for a retry at once: per window, retries stay within
    ratio * requests + floor, however long the storm lasts."""
    budget = RetryBudget(BUDGET)
    granted: list[float] = []
    for tick in range(seconds * 10):
        now = tick / 10
        for _ in range(requests_per_s // 10 + (tick % 10 < requests_per_s % 10)):
            budget.record_request(now)
            if budget.try_spend(now):
                granted.append(now)
        # Over the last full window (a whole number of slots), granted <= ratio * sent + floor.
        start = now - BUDGET.window_s + BUDGET.window_s / BUDGET.window_slots
        in_window = sum(1 for t in granted if t > start - 1e-9)
        assert in_window <= BUDGET.ratio * requests_per_s * BUDGET.window_s + FLOOR
