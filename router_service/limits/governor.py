"""The facade the request path calls: admit before dispatch, settle or release after.

    admission = await governor.admit(identity, worst_case(candidates, prompt_tokens, max_output))
    policy = admission.downgrade_policy or policy      # a soft threshold moves to a cheaper policy
    try:
        result = await run(...)
    except BaseException:
        await admission.release()
        raise
    await admission.settle(exact_cost_nanos, input_tokens + output_tokens)

`admit` raises `LimitExceededError` (RESOURCE_EXHAUSTED) or `LimitsUnavailableError` (UNAVAILABLE,
fail_closed), having counted nothing. A hedge's second attempt admits again. One store round trip
per admit and per settle; none at all for a caller no limit applies to.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Callable

from router_service.identity.model import Identity
from router_service.limits import metrics
from router_service.limits.errors import (
    BudgetExceededError,
    LimitExceededError,
    LimitsUnavailableError,
    RequestCostCeilingError,
)
from router_service.limits.model import NOTHING_USED, Bound, Check, Estimate, FailurePolicy, Metric, Usage
from router_service.limits.periods import Window
from router_service.limits.plan import (
    LimitsPlan,
    Reservation,
    Verdict,
    build_checks,
    ceiling_violation,
    failure_policy,
    retry_after_s,
    verdict,
    windows_of,
)
from router_service.limits.store import LimitStore, StoreUnavailableError

log = logging.getLogger(__name__)

_NO_VERDICT = Verdict()


class Admission:
    """One admitted request's hold on its limits. Settle or release it exactly once (later calls
    do nothing); an admission never settled is given back by the store after the TTL."""

    __slots__ = ("_done", "_governor", "_id", "_reservation", "counted", "verdict")

    def __init__(
        self,
        governor: Governor | None,
        reservation_id: str = "",
        reservation: Reservation | None = None,
        verdict: Verdict = _NO_VERDICT,
    ) -> None:
        self._governor = governor
        self._id = reservation_id
        self._reservation = reservation
        self.verdict = verdict
        # False: no limit applies, or the store was unreachable and every limit is fail_open.
        self.counted = reservation is not None
        self._done = False

    @property
    def downgrade_policy(self) -> str:
        """Non-empty: route this request with this (cheaper) policy."""
        return self.verdict.downgrade_policy

    async def settle(self, cost_nanos: int, tokens: int) -> None:
        """Count what the request really used (exact nano-USD; input + output tokens)."""
        await self._finish(Usage(cost_nanos, tokens))

    async def release(self) -> None:
        """The request failed or was cancelled: give back its cost, tokens and concurrency slot
        (its request still counts against requests per minute)."""
        await self._finish(NOTHING_USED)

    async def _finish(self, usage: Usage) -> None:
        if self._done:
            return
        self._done = True
        if self._governor is not None and self._reservation is not None:
            await self._governor.finish(self._id, self._reservation, usage)


UNLIMITED = Admission(None)  # no limit applies: settle and release do nothing


class Governor:
    def __init__(
        self,
        plan: LimitsPlan,
        store: LimitStore,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._plan = plan
        self._store = store
        self._clock = clock
        self._new_id = new_id or _id_source()
        self._ttl = plan.reservation_ttl_s

    async def admit(self, identity: Identity, estimate: Estimate) -> Admission:
        bounds = self._plan.bounds_for(identity)
        if not bounds:
            return UNLIMITED
        over = ceiling_violation(bounds, estimate)
        if over is not None:
            _count(over, "ceiling")
            raise _ceiling_error(over, estimate)
        now = self._clock()
        windows = windows_of(bounds, now)
        checks = build_checks(bounds, windows, estimate, self._ttl)
        reservation_id = self._new_id()
        try:
            outcome = await self._store.reserve(reservation_id, checks, now, now + self._ttl)
        except StoreUnavailableError as exc:
            return self._store_failed(bounds, exc)
        if not outcome.admitted:
            i = outcome.denied
            _count(bounds[i], "deny")
            raise _exceeded(bounds[i], windows[i], checks[i], outcome.currents[i], now)
        decided = verdict(bounds, checks, outcome.currents)
        if decided.downgraded_by is not None:
            _count(decided.downgraded_by, "downgrade")
        for bound in decided.over_soft:
            _count(bound, "soft_exceeded")
        _ALLOWED.inc()
        return Admission(self, reservation_id, Reservation(bounds, checks), decided)

    @property
    def plan(self) -> LimitsPlan:
        return self._plan

    @property
    def store(self) -> LimitStore:
        return self._store

    async def close(self) -> None:
        """Close the store (its connections); admissions after this fail as store failures."""
        await self._store.close()

    async def finish(self, reservation_id: str, reservation: Reservation, usage: Usage) -> None:
        try:
            live = await self._store.settle(reservation_id, reservation.settlements(usage), self._clock())
        except StoreUnavailableError as exc:
            # The hold expires after the TTL; the spend is not counted here (the costs consumer's
            # rollups still have it). Counted, so an operator sees the store losing spend.
            metrics.STORE_FAILURES.labels("settle", "lost").inc()
            log.warning("limits: settle of %s not counted: %s", reservation_id, exc)
            return
        if not live:
            metrics.LATE_SETTLES.inc()

    def _store_failed(self, bounds: tuple[Bound, ...], exc: StoreUnavailableError) -> Admission:
        policy = failure_policy(bounds)
        metrics.STORE_FAILURES.labels("reserve", policy.value).inc()
        if policy is FailurePolicy.FAIL_CLOSED:
            closed = next(b for b in bounds if b.limit.on_store_failure is FailurePolicy.FAIL_CLOSED)
            raise LimitsUnavailableError(closed.entity) from exc
        log.warning("limits: store unreachable, admitted uncounted (fail_open): %s", exc)
        return Admission(None)


_ALLOWED = metrics.DECISIONS.labels("", "", "allow")  # the common case, its child looked up once


def _id_source() -> Callable[[], str]:
    """Reservation ids unique across replicas and restarts: a random 64-bit prefix per governor
    and a sequence (a quarter of uuid4's cost, which the request path pays once per admit)."""
    prefix = uuid.uuid4().hex[:16] + "-"
    sequence = itertools.count()
    return lambda: prefix + str(next(sequence))


def _count(bound: Bound, decision: str) -> None:
    metrics.DECISIONS.labels(bound.limit.level.value, bound.limit.metric.value, decision).inc()


def _exceeded(
    bound: Bound, window: Window | None, check: Check, current: int, now: float
) -> LimitExceededError:
    limit = bound.limit
    kind = BudgetExceededError if limit.metric is Metric.COST else LimitExceededError
    return kind(
        level=limit.level,
        entity=bound.entity,
        metric=limit.metric,
        limit=limit.amount,
        period=limit.period_text,
        retry_after_s=retry_after_s(window, now),
        asked=check.ask,
        current=current,
    )


def _ceiling_error(bound: Bound, estimate: Estimate) -> RequestCostCeilingError:
    limit = bound.limit
    assert limit.max_request_nanos is not None  # ceiling_violation found it set
    return RequestCostCeilingError(
        level=limit.level,
        entity=bound.entity,
        metric=Metric.COST,
        limit=limit.max_request_nanos,
        period="request",
        retry_after_s=None,
        asked=estimate.cost_nanos,
        current=0,
    )
