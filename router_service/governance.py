"""Budgets and rate limits on the request path (issue 14): reserve before dispatch, settle after.

The engine's `_admit` asks `Governance.admit` for the request's worst case (limits/cost.py over
the decision's chain, the estimated prompt and the output cap) and routes with the downgrade
policy when a soft budget says so; a hedge's second attempt reserves on its own
(`RequestHold.hedge`). Every reservation ends exactly once: settled to the exact cost and the
real tokens of what the upstream answered (a stream: its final usage; a detached hedge loser: its
unused answer), or released when the request fails or is cancelled.

Settles and releases run as background tasks: the reservation already holds the money, so the
caller does not wait for the store's second round trip. They are never lost silently: the
governor counts a settle the store did not take (`llmrouter_limits_store_failures{operation=
"settle"}`), an unexpected failure is counted here, and `aclose` waits for those still running.

Each admission decision is published as a GovernanceEvent (allow, downgrade, deny, and the two
store-outage outcomes); callers no limit applies to get none, and cost nothing but a dict lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from router_service.call import CallContext
from router_service.catalog import Deployment
from router_service.domain import BudgetDowngrade, Usage
from router_service.identity.model import Identity
from router_service.limits import metrics
from router_service.limits.cost import worst_case
from router_service.limits.errors import LimitExceededError, LimitsUnavailableError
from router_service.limits.governor import UNLIMITED, Admission, Governor
from router_service.limits.model import Bound, Estimate
from router_service.limits.plan import build_checks, windows_of
from router_service.limits.reconcile import Reconciler, Rollup
from router_service.limits.report import named_bounds, usage
from router_service.limits.store import StoreUnavailableError
from router_service.telemetry.events import EventSink, GovernanceEvent, NullSink, TelemetryEvent

log = logging.getLogger(__name__)
REPORT_INTERVAL_S = 15.0


class Governance:
    """The limits governor as the engine uses it; one per router, kept across config reloads."""

    def __init__(
        self, governor: Governor, sink: EventSink | None = None, *, wall: Callable[[], float] = time.time
    ) -> None:
        self.governor = governor
        self._sink = sink or NullSink()
        self._wall = wall
        self._pending: set[asyncio.Task[None]] = set()
        self._reporter: asyncio.Task[None] | None = None
        self._reconciler: Reconciler | None = None

    async def admit(
        self, ctx: CallContext, estimate: Estimate, policy: str, *, hedge: bool = False
    ) -> Admission:
        """Reserve `estimate` against every limit of the caller; raises LimitExceededError
        (RESOURCE_EXHAUSTED) or LimitsUnavailableError (UNAVAILABLE), having counted nothing."""
        try:
            admission = await self.governor.admit(ctx.identity, estimate)
        except LimitExceededError as exc:
            self._publish(ctx, _denied(exc, estimate, policy, hedge))
            raise
        except LimitsUnavailableError as exc:
            body = _event("deny_store_unavailable", estimate, policy, hedge, entity=exc.entity)
            self._publish(ctx, body)
            raise
        if admission is UNLIMITED:
            return admission
        if not admission.counted:
            self._publish(ctx, _event("allow_uncounted", estimate, policy, hedge))
        elif (by := admission.verdict.downgraded_by) is not None:
            limit = by.limit
            body = _event(
                "downgrade",
                estimate,
                policy,
                hedge,
                level=limit.level.value,
                entity=by.entity,
                metric=limit.metric.value,
                limit=limit.amount,
                period=limit.period_text,
                downgrade_policy=admission.downgrade_policy,
            )
            self._publish(ctx, body)
        else:
            self._publish(ctx, _event("allow", estimate, policy, hedge))
        return admission

    async def preview(
        self, identity: Identity, estimate: Estimate, from_policy: str
    ) -> tuple[str, BudgetDowngrade] | None:
        """For `Route`: the downgrade a Complete or Stream of this caller would get now, as
        (policy, downgrade), the counters only read (nothing reserved, no event). None: no
        threshold is reached, or the store cannot be read."""
        plan = self.governor.plan
        bounds = [b for b in plan.bounds_for(identity) if b.limit.downgrade_at is not None]
        if not bounds:
            return None
        now = self._wall()
        checks = build_checks(bounds, windows_of(bounds, now), estimate, plan.reservation_ttl_s)
        for bound, check in zip(bounds, checks, strict=True):
            try:
                used, reserved = await self.governor.store.read(check.counter, check.oldest_bucket, now)
            except StoreUnavailableError:
                return None
            limit = bound.limit
            assert limit.downgrade_at is not None
            if used + reserved + check.ask >= limit.downgrade_at * limit.amount:
                return limit.downgrade_policy, _downgrade(bound, from_policy)
        return None

    def settle(self, admission: Admission, cost_nanos: int, usage: Usage | None) -> None:
        """Count what the request used, off the caller's path (see the module docstring)."""
        if admission.counted:
            tokens = 0 if usage is None else usage.input_tokens + usage.output_tokens
            self._spawn(admission.settle(cost_nanos, tokens))

    def release(self, admission: Admission) -> None:
        if admission.counted:
            self._spawn(admission.release())

    def reconcile_with(self, rollup: Rollup) -> None:
        """Each report also reconciles the store with these costs rollups (limits/reconcile.py)."""
        self._reconciler = Reconciler(self.governor, rollup)

    def start_reporting(self, interval_s: float = REPORT_INTERVAL_S) -> None:
        """Refresh the per-limit gauges from the store every `interval_s` (limits/metrics.py)."""
        if self._reporter is None:
            self._reporter = asyncio.get_running_loop().create_task(self._report_every(interval_s))

    async def aclose(self) -> None:
        """Stop reporting; wait for the settles still running (at shutdown, before the store closes)."""
        if self._reporter is not None:
            self._reporter.cancel()
            await asyncio.gather(self._reporter, return_exceptions=True)
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def report(self) -> None:
        """One refresh of the gauges: a read per limit of a named entity or the global level."""
        governor = self.governor
        try:
            rows = await usage(governor.store, named_bounds(governor.plan), self._wall())
        except StoreUnavailableError:
            metrics.STORE_REACHABLE.set(0)
            return
        metrics.STORE_REACHABLE.set(1)
        for row in rows:
            labels = (row.level, row.entity, row.metric)
            metrics.LIMIT_AMOUNT.labels(*labels).set(row.limit)
            metrics.LIMIT_USED.labels(*labels).set(row.used)
            metrics.LIMIT_RESERVED.labels(*labels).set(row.reserved)
        if self._reconciler is not None:
            await self._reconciler.run_once(self._wall())

    async def _report_every(self, interval_s: float) -> None:
        while True:
            try:
                await self.report()
            except (
                Exception
            ):  # a reporting bug must not end the reports; the store's own failures are handled
                log.exception("limits: reporting failed")
            await asyncio.sleep(interval_s)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if task.cancelled():
            metrics.STORE_FAILURES.labels("settle", "cancelled").inc()
            return
        if (exc := task.exception()) is not None:
            # The governor already counts a store that did not answer; anything else lands here.
            metrics.STORE_FAILURES.labels("settle", "error").inc()
            log.error("limits: a settle failed unexpectedly", exc_info=exc)

    def _publish(self, ctx: CallContext, body: GovernanceEvent) -> None:
        self._sink.publish(TelemetryEvent(ctx, body, "", self._wall()))


class RequestHold:
    """One request's reservations: the request's own (`primary`) and its hedge's, if any."""

    __slots__ = ("_ended", "_governance", "primary", "prompt_tokens")

    def __init__(self, governance: Governance) -> None:
        self._governance = governance
        self.primary: Admission = UNLIMITED
        self.prompt_tokens = 0  # the estimate the primary reservation was made with
        self._ended = False

    async def admit(self, ctx: CallContext, estimate: Estimate, policy: str) -> Admission:
        self.primary = await self._governance.admit(ctx, estimate, policy)
        return self.primary

    async def hedge(self, ctx: CallContext, estimate: Estimate, policy: str) -> Admission | None:
        """The hedge's own reservation, or None: a limit refuses it (the request goes on
        without the hedge; the refusal is an event like any other)."""
        try:
            return await self._governance.admit(ctx, estimate, policy, hedge=True)
        except (LimitExceededError, LimitsUnavailableError):
            return None

    def settle(self, cost_nanos: int, usage: Usage | None) -> None:
        """The request answered: count its exact cost and real tokens. Only the first of
        `settle` and `release` counts (a stream's consumer may stop right after its end)."""
        if not self._ended:
            self._ended = True
            self._governance.settle(self.primary, cost_nanos, usage)

    def release(self) -> None:
        if not self._ended:
            self._ended = True
            self._governance.release(self.primary)

    def settle_other(self, admission: Admission, cost_nanos: int, usage: Usage | None) -> None:
        self._governance.settle(admission, cost_nanos, usage)

    def release_other(self, admission: Admission) -> None:
        self._governance.release(admission)


def estimate_for(chain: Iterable[Deployment], prompt_tokens: int, max_output: int | None) -> Estimate:
    """The reservation of a request that may be answered by any deployment of `chain`."""
    return worst_case(chain, prompt_tokens, max_output)


def downgrade_of(admission: Admission, from_policy: str) -> BudgetDowngrade:
    by = admission.verdict.downgraded_by
    assert by is not None
    return _downgrade(by, from_policy)


def _downgrade(by: Bound, from_policy: str) -> BudgetDowngrade:
    limit = by.limit
    share = round((limit.downgrade_at or 0.0) * 100)
    reason = f"{by.entity} {limit.metric.value} at >= {share}% of {limit.amount} per {limit.period_text}"
    return BudgetDowngrade(from_policy=from_policy, entity=by.entity, reason=reason)


def _denied(exc: LimitExceededError, estimate: Estimate, policy: str, hedge: bool) -> GovernanceEvent:
    return _event(
        "deny",
        estimate,
        policy,
        hedge,
        level=exc.level.value,
        entity=exc.entity,
        metric=exc.metric.value,
        limit=exc.limit,
        current=exc.current,
        asked=exc.asked,
        period=exc.period,
        retry_after_s=exc.retry_after_s,
    )


def _event(decision: str, estimate: Estimate, policy: str, hedge: bool, **fields: Any) -> GovernanceEvent:
    return GovernanceEvent(
        decision=decision,
        reserved_cost_nanos=estimate.cost_nanos,
        reserved_tokens=estimate.tokens,
        policy=policy,
        hedge=hedge,
        **fields,
    )
