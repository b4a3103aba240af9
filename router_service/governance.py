"""Budgets and rate limits on the request path (issue 14): reserve before dispatch, settle after.

Each request gets a hold (`hold_for`: a `RequestHold`, or `NO_LIMITS` when nothing is limited),
the engine's governance step. The engine's `_admit` calls `RequestHold.admit`, which asks
`Governance.admit` for the request's worst case (limits/cost.py over the decision's chain, the
estimated prompt and the output cap) and routes again with the downgrade policy when a soft
budget says so; a hedge's second attempt reserves on its own (`RequestHold.hedge`). Every
reservation ends exactly once: settled to the exact cost and the real tokens of what the upstream
answered (a stream: its final usage; a detached hedge loser: its unused answer), or released when
the request fails or is cancelled.

Settles and releases run as background tasks: the reservation already holds the money, so the
caller does not wait for the store's second round trip. They are never lost silently: the
governor counts a settle the store did not take (`llmrouter_limits_store_failures{operation=
"settle"}`), an unexpected failure is counted here, and `aclose` waits for those still running.

Each admission decision is published as a GovernanceEvent (allow, downgrade, deny, and the two
store-outage outcomes); callers no limit applies to get none, and cost nothing but a dict lookup.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from asyncio import Task
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from router_service.call import CallContext
from router_service.catalog import Deployment
from router_service.domain import BudgetDowngrade, ChatRequest, RouteDecision, Usage
from router_service.identity.model import Identity
from router_service.limits import metrics
from router_service.limits.cost import worst_case
from router_service.limits.errors import LimitExceededError, LimitsUnavailableError
from router_service.limits.governor import UNLIMITED, Admission, Governor
from router_service.limits.model import Bound, Estimate
from router_service.limits.plan import build_checks, windows_of
from router_service.limits.reconcile import Reconciler, RollingRollup, Rollup
from router_service.limits.report import named_bounds, usage
from router_service.limits.store import StoreUnavailableError
from router_service.settings import RuntimeConfig
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

    def reconcile_with(self, rollup: Rollup, rolling: RollingRollup | None = None) -> None:
        """Each report also reconciles the store with these costs rollups (limits/reconcile.py):
        calendar windows, and rolling budgets' buckets when `rolling` is given."""
        self._reconciler = Reconciler(self.governor, rollup, rolling=rolling)

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
    """One request's reservations: the request's own (`primary`) and its hedge's, if any. The
    engine's governance step: `admit` before the first attempt, `hedge` before a hedge's second
    attempt, and exactly one of `settle` and `release` when the request ends."""

    __slots__ = ("_ended", "_governance", "primary", "prompt_tokens")

    def __init__(self, governance: Governance) -> None:
        self._governance = governance
        self.primary: Admission = UNLIMITED
        self.prompt_tokens = 0  # the estimate the primary reservation was made with
        self._ended = False

    async def admit(
        self,
        ctx: CallContext,
        request: ChatRequest,
        decision: RouteDecision,
        config: RuntimeConfig,
        reroute: Callable[[ChatRequest], RouteDecision],
    ) -> RouteDecision:
        """Reserve the worst case of the decision's chain (limits/cost.py); a soft budget past its
        threshold routes the request again (`reroute`) with its cheaper policy, and the decision
        says so. The reservation stays the first chain's: the downgrade policy is the cheaper one."""
        self.prompt_tokens = config.routing_env.cost_model.prompt_tokens(request)
        by_key = config.catalog.by_key
        estimate = estimate_for(
            (by_key[k] for k in decision.chain), self.prompt_tokens, request.params.max_output_tokens
        )
        admission = self.primary = await self._governance.admit(ctx, estimate, decision.policy)
        target = admission.downgrade_policy
        if not target or target == decision.policy:
            return decision
        moved = dataclasses.replace(request, hints=dataclasses.replace(request.hints, policy=target))
        return dataclasses.replace(reroute(moved), downgrade=downgrade_of(admission, decision.policy))

    async def hedge(
        self, ctx: CallContext, second: Deployment, max_output: int | None, policy: str
    ) -> Admission | None:
        """The hedge's own reservation (the worst case of `second` alone), or None: a limit
        refuses it (the request goes on without the hedge; the refusal is an event like any other)."""
        estimate = estimate_for((second,), self.prompt_tokens, max_output)
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

    def release_other(self, admission: Admission) -> None:
        """A hedge's reservation its request no longer needs (no hedge was sent, or it lost)."""
        self._governance.release(admission)

    def loser_end(self, reservation: Admission, deployment: Deployment) -> Callable[[Task[Any]], None]:
        """What a detached hedge loser's end does to its reservation: settled with the answer
        nobody used (the upstream billed it; its attempt event carries the same cost), else
        released. The task's result is (ChatResult | None, error)."""

        def done(task: Task[Any]) -> None:
            result = None if task.cancelled() or task.exception() is not None else task.result()[0]
            if result is None:
                self._governance.release(reservation)
            else:
                cost = deployment.price.cost_nanos(result.usage)
                self._governance.settle(reservation, cost, result.usage)

        return done


class NoLimits:
    """The governance step of a router without limits: admits everything as routed, reserves
    nothing, settles nothing (the engine takes the same path with or without limits)."""

    __slots__ = ()

    async def admit(
        self, ctx: CallContext, request: ChatRequest, decision: RouteDecision, *_: object
    ) -> RouteDecision:
        return decision

    async def hedge(self, *_: object) -> Admission | None:
        return UNLIMITED

    def settle(self, cost_nanos: int, usage: Usage | None) -> None:
        pass

    def release(self) -> None:
        pass

    def release_other(self, admission: Admission) -> None:
        pass

    def loser_end(self, reservation: Admission, deployment: Deployment) -> Callable[[Task[Any]], None]:
        return _nothing


Hold = RequestHold | NoLimits
NO_LIMITS = NoLimits()


def hold_for(governance: Governance | None) -> Hold:
    """A request's governance step: its own reservations, or none without limits."""
    return NO_LIMITS if governance is None else RequestHold(governance)


def _nothing(task: Task[Any]) -> None:
    pass


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
