"""The store of limit counters: its interface, and the in-process implementation.

Two implementations with the same semantics (the tests run one suite against both):
`MemoryLimitStore` here, for a single router with no shared store, and `RedisLimitStore`
(redis_store.py), shared by replicas. The semantics:

- A counter holds `used` (one field, or one per rolling bucket) and `reserved`.
- `reserve` first gives back every reservation whose `expires_at` has passed (its router died or
  lost the store: its hold comes back after that bound), then refuses at the first hard check
  where used + reserved + ask > limit, else adds every ask to `reserved` and records the
  reservation. All or nothing, one atomic step.
- `settle` removes the reservation's holds (unless it had already expired: returns False, a late
  settle) and adds the actual amounts to `used`, always: spend that happened is counted.
- Time is the caller's `now` (Unix seconds): replicas need synchronized clocks, as calendar
  windows do anyway.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from router_service.limits.model import Check, Settlement
from router_service.limits.plan import first_violation

RESERVED = "r"  # the field of a counter that holds reservations


class StoreUnavailableError(Exception):
    """The store could not be reached or did not answer in time: the failure policy decides."""


@dataclass(frozen=True, slots=True)
class ReserveOutcome:
    admitted: bool
    denied: int  # the refusing check's index; -1 when admitted
    # used + reserved of each check before this request (up to the refusing one when denied)
    currents: tuple[int, ...]


class LimitStore(Protocol):
    async def reserve(
        self, reservation_id: str, checks: Sequence[Check], now: float, expires_at: float
    ) -> ReserveOutcome: ...

    async def settle(self, reservation_id: str, settlements: Sequence[Settlement], now: float) -> bool:
        """True when the reservation was still held; False: it had expired (a late settle)."""
        ...

    async def read(self, counter: str, oldest_bucket: int, now: float) -> tuple[int, int]:
        """(used, reserved) of one counter, for operators and tests: reservations as of the
        last reserve (which gives back expired ones)."""
        ...

    async def read_buckets(self, counter: str, now: float) -> dict[int, int]:
        """{bucket: used} of a rolling counter, every bucket still stored (the reconciler's view)."""
        ...

    async def raise_used(
        self, counter: str, floor: int, expire_at: float, now: float, field: str = "u"
    ) -> int:
        """Make `field` of a counter (`used` "u", or a rolling bucket "u<n>") at least `floor` (the
        reconciler restoring spend a lost store forgot); atomic, so replicas restoring at once add
        nothing twice. Returns what was added."""
        ...

    async def close(self) -> None: ...


_PURGE_EVERY = 10_000  # reserves between scans for expired counters (bounds memory)


class MemoryLimitStore:
    """One router's counters in a dict. Every method runs without awaiting: atomic on the loop."""

    def __init__(self) -> None:
        self._counters: dict[str, dict[str, int]] = {}
        self._counter_expiry: dict[str, float] = {}
        self._holds: dict[str, tuple[float, tuple[tuple[str, int], ...]]] = {}  # id -> (expires_at, holds)
        # (expires_at, id) of every reservation, a heap; settled ones are skipped when popped, and
        # the heap is rebuilt from the live ones when they are under half of it (bounded memory).
        self._expiry: list[tuple[float, str]] = []
        self._since_purge = 0

    async def reserve(
        self, reservation_id: str, checks: Sequence[Check], now: float, expires_at: float
    ) -> ReserveOutcome:
        self._give_back_expired(now)
        self._purge_counters(now)
        currents = [self._current(c.counter, c.oldest_bucket, now) for c in checks]
        refused = first_violation(checks, currents)
        if refused is not None:
            return ReserveOutcome(False, refused, tuple(currents[: refused + 1]))
        for check in checks:
            fields = self._counters.setdefault(check.counter, {})
            fields[RESERVED] = fields.get(RESERVED, 0) + check.ask
            self._touch(check.counter, check.expire_at)
        self._holds[reservation_id] = (expires_at, tuple((c.counter, c.ask) for c in checks))
        heapq.heappush(self._expiry, (expires_at, reservation_id))
        return ReserveOutcome(True, -1, tuple(currents))

    async def settle(self, reservation_id: str, settlements: Sequence[Settlement], now: float) -> bool:
        live = self._holds.pop(reservation_id, None) is not None
        if len(self._expiry) > 2 * len(self._holds) + 1024:
            self._expiry = [(t, rid) for rid, (t, _) in self._holds.items()]
            heapq.heapify(self._expiry)
        for s in settlements:
            fields = self._live_counter(s.counter, now)
            if live and fields is not None:
                fields[RESERVED] = fields.get(RESERVED, 0) - s.reserved
            if s.actual:
                fields = self._counters.setdefault(s.counter, {}) if fields is None else fields
                fields[s.field] = fields.get(s.field, 0) + s.actual
                self._touch(s.counter, s.expire_at)
        return live

    async def read(self, counter: str, oldest_bucket: int, now: float) -> tuple[int, int]:
        fields = self._live_counter(counter, now) or {}
        reserved = fields.get(RESERVED, 0)
        return self._current(counter, oldest_bucket, now) - reserved, reserved

    async def read_buckets(self, counter: str, now: float) -> dict[int, int]:
        fields = self._live_counter(counter, now) or {}
        return {int(name[1:]): value for name, value in fields.items() if name[1:].isdigit()}

    async def raise_used(
        self, counter: str, floor: int, expire_at: float, now: float, field: str = "u"
    ) -> int:
        fields = self._live_counter(counter, now)
        fields = self._counters.setdefault(counter, {}) if fields is None else fields
        added = max(0, floor - fields.get(field, 0))
        if added:
            fields[field] = floor
            self._touch(counter, expire_at)
        return added

    async def close(self) -> None:
        return None

    def _current(self, counter: str, oldest_bucket: int, now: float) -> int:
        fields = self._live_counter(counter, now)
        if fields is None:
            return 0
        if oldest_bucket < 0:
            return fields.get(RESERVED, 0) + fields.get("u", 0)
        total = 0
        for name in list(fields):
            if name == RESERVED:
                total += fields[name]
            elif int(name[1:]) < oldest_bucket:
                del fields[name]  # a rolling bucket that no longer counts
            else:
                total += fields[name]
        return total

    def _live_counter(self, counter: str, now: float) -> dict[str, int] | None:
        expiry = self._counter_expiry.get(counter)
        if expiry is not None and now >= expiry:
            self._drop(counter)
            return None
        return self._counters.get(counter)

    def _touch(self, counter: str, expire_at: float) -> None:
        if expire_at > 0:
            self._counter_expiry[counter] = max(expire_at, self._counter_expiry.get(counter, 0.0))

    def _drop(self, counter: str) -> None:
        self._counters.pop(counter, None)
        self._counter_expiry.pop(counter, None)

    def _give_back_expired(self, now: float) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, reservation_id = heapq.heappop(expiry)
            entry = self._holds.pop(reservation_id, None)
            if entry is None:
                continue  # settled already
            for counter, amount in entry[1]:
                fields = self._live_counter(counter, now)
                if fields is not None:
                    fields[RESERVED] = fields.get(RESERVED, 0) - amount

    def _purge_counters(self, now: float) -> None:
        self._since_purge += 1
        if self._since_purge < _PURGE_EVERY:
            return
        self._since_purge = 0
        for counter in [c for c, t in self._counter_expiry.items() if now >= t]:
            self._drop(counter)
