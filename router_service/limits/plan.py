"""Pure policy: which limits bind a caller, what a request reserves, and what the counts decide.

No I/O and no clock: `now` comes in. The stores apply `first_violation` atomically (the Redis
store in Lua, mirroring it line for line); everything else here runs in the governor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from router_service.identity.model import Identity
from router_service.limits.model import (
    EVERY_ENTITY,
    Bound,
    Check,
    Estimate,
    FailurePolicy,
    Level,
    Limit,
    Settlement,
    Usage,
)
from router_service.limits.periods import Window

# Bound how many callers' limit lists are kept: key ids are bounded by the key store, but an
# `optional`-auth router may see many distinct team/customer combinations.
_CACHE_MAX = 50_000


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one admitted request holds: its checks, with the windows they were computed in."""

    bounds: tuple[Bound, ...]
    checks: tuple[Check, ...]

    def settlements(self, usage: Usage) -> tuple[Settlement, ...]:
        return tuple(
            Settlement(c.counter, c.field, c.ask, usage.actual(b.limit.metric), c.expire_at)
            for b, c in zip(self.bounds, self.checks, strict=True)
        )


@dataclass(slots=True)
class LimitsPlan:
    """Every configured limit, indexed by (level, entity); frozen after construction."""

    limits: tuple[Limit, ...]
    # A reservation whose router died comes back after this; longer than any request may run.
    reservation_ttl_s: float = 600.0
    _index: dict[tuple[Level, str], tuple[Limit, ...]] = field(default_factory=dict, repr=False)
    _cache: dict[tuple[str, str, str], tuple[Bound, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        grouped: dict[tuple[Level, str], list[Limit]] = {}
        for limit in self.limits:
            grouped.setdefault((limit.level, limit.entity), []).append(limit)
        self._index = {k: tuple(v) for k, v in grouped.items()}

    def bounds_for(self, identity: Identity) -> tuple[Bound, ...]:
        """The limits that count this caller, most specific level first. A level the identity
        has no entity for (no team, or auth off: no key id) is not limited."""
        cache_key = (identity.key_id, identity.team, identity.customer)
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        bounds: list[Bound] = []
        for level, name in (
            (Level.KEY, identity.key_id),
            (Level.TEAM, identity.team),
            (Level.CUSTOMER, identity.customer),
            (Level.GLOBAL, EVERY_ENTITY),
        ):
            if name:
                entity = "global" if level is Level.GLOBAL else f"{level.value}:{name}"
                bounds += [Bound(limit, entity) for limit in self._limits_of(level, name)]
        result = tuple(bounds)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[cache_key] = result
        return result

    def _limits_of(self, level: Level, name: str) -> tuple[Limit, ...]:
        named = self._index.get((level, name), ())
        every = self._index.get((level, EVERY_ENTITY), ()) if name != EVERY_ENTITY else ()
        replaced = {limit.metric for limit in named}
        return named + tuple(limit for limit in every if limit.metric not in replaced)


def ceiling_violation(bounds: Sequence[Bound], estimate: Estimate) -> Bound | None:
    """The first budget whose per-request cost ceiling the request's worst case exceeds."""
    for bound in bounds:
        ceiling = bound.limit.max_request_nanos
        if ceiling is not None and estimate.cost_nanos > ceiling:
            return bound
    return None


def windows_of(bounds: Sequence[Bound], now: float) -> tuple[Window | None, ...]:
    return tuple(b.limit.period.window(now) if b.limit.period is not None else None for b in bounds)


def build_checks(
    bounds: Sequence[Bound], windows: Sequence[Window | None], estimate: Estimate, ttl_s: float
) -> tuple[Check, ...]:
    """One check per bound. A counter lives one more window after its own (plus the reservation
    TTL, for late settles), so the last period stays readable and late settles still land."""
    checks = []
    for bound, window in zip(bounds, windows, strict=True):
        limit = bound.limit
        ask = estimate.ask(limit.metric)
        if window is None:
            checks.append(Check(bound.counter_base, "u", -1, _store_limit(limit), ask, 0.0))
            continue
        expire_at = window.end + (window.end - window.start) + ttl_s
        counter = f"{bound.counter_base}:{window.key}"
        checks.append(Check(counter, window.field, window.oldest_bucket, _store_limit(limit), ask, expire_at))
    return tuple(checks)


def _store_limit(limit: Limit) -> int:
    return limit.amount if limit.hard else -1


def first_violation(checks: Sequence[Check], currents: Sequence[int]) -> int | None:
    """The index of the first hard check that `ask` more would take past its limit. `currents`
    are used + reserved per check before this request. A request asking 0 never violates."""
    for i, (check, current) in enumerate(zip(checks, currents, strict=True)):
        if check.limit >= 0 and check.ask > 0 and current + check.ask > check.limit:
            return i
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an admitted request's counts say beyond "yes"."""

    downgrade_policy: str = ""  # non-empty: route with this policy instead (a soft threshold)
    downgraded_by: Bound | None = None
    over_soft: tuple[Bound, ...] = ()  # soft limits this request took past 100% (alert, not refuse)


NOTHING_TO_SAY = Verdict()  # the common verdict, shared: no downgrade, no soft limit passed


def verdict(bounds: Sequence[Bound], checks: Sequence[Check], currents: Sequence[int]) -> Verdict:
    """Downgrade at the most specific limit whose threshold this request reaches (its own ask
    included: the request that crosses 80% already goes to the cheaper policy)."""
    downgrade: Bound | None = None
    over_soft: list[Bound] = []
    for bound, check, current in zip(bounds, checks, currents, strict=True):
        limit = bound.limit
        after = current + check.ask
        threshold = limit.downgrade_at
        if downgrade is None and threshold is not None and after >= threshold * limit.amount:
            downgrade = bound
        if not limit.hard and after > limit.amount:
            over_soft.append(bound)
    if downgrade is None:
        return Verdict(over_soft=tuple(over_soft)) if over_soft else NOTHING_TO_SAY
    return Verdict(downgrade.limit.downgrade_policy, downgrade, tuple(over_soft))


def retry_after_s(window: Window | None, now: float) -> float | None:
    """When the window that refused resets; None for concurrency (a slot frees any moment)."""
    return None if window is None else max(window.end - now, 0.0)


def failure_policy(bounds: Sequence[Bound]) -> FailurePolicy:
    """Store unreachable: one fail_closed limit among the caller's refuses the request."""
    if any(b.limit.on_store_failure is FailurePolicy.FAIL_CLOSED for b in bounds):
        return FailurePolicy.FAIL_CLOSED
    return FailurePolicy.FAIL_OPEN
