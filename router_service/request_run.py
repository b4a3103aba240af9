"""Book-keeping for one request in the engine: which deployment to try next, and what happened.

`Targets` turns a routing decision into a sequence of attempts: the chain in order, retries of the
same deployment when the error policy and the retry budget allow, fallbacks by error class
(context-length errors only go to larger windows), deployments whose breaker refuses skipped.
`Run` records every attempt into live state and reports it to the observer as it happens, and makes
sure each request ends with exactly one completion or one error report.

Pure decisions live in `routing/` and `resilience/`; this module only sequences them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from router_service.catalog import Catalog, Deployment
from router_service.domain import (
    AttemptOutcome,
    AttemptRecord,
    ChatRequest,
    ChatResult,
    RouteDecision,
    StreamDone,
    Usage,
)
from router_service.errors import (
    AllAttemptsFailedError,
    DeadlineExceededError,
    ErrorClass,
    ProviderError,
    UpstreamRejectedError,
)
from router_service.identity.model import UNRESTRICTED, Identity
from router_service.resilience.error_policy import ErrorPolicy
from router_service.resilience.live_state import LiveState
from router_service.resilience.recovery import Action, Failure, after_failure
from router_service.resilience.retry import RetryBudget, RetryBudgetConfig, RetryConfig, attempt_timeout
from router_service.routing.fallback import remaining_chain


@dataclass(frozen=True, slots=True)
class CallContext:
    """Per-call facts from the API layer."""

    request_id: str
    deadline: float  # time.monotonic() value after which the caller no longer waits
    started: float = 0.0  # time.monotonic() when the call arrived
    tags: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False
    trace_id: str = ""  # the caller's W3C trace id (32 hex), empty when untraced
    span_id: str = ""  # the caller's span id (16 hex)

    identity: Identity = UNRESTRICTED  # who called (the auth gate's answer)

    # A CallContext is also its events' telemetry.events.EventContext: the attribution
    # dimensions come from the identity, never from what the caller claims in tags.
    @property
    def api_key_id(self) -> str:
        return self.identity.key_id

    @property
    def team(self) -> str:
        return self.identity.team

    @property
    def customer(self) -> str:
        return self.identity.customer

    @property
    def user(self) -> str:
        return self.identity.user


@dataclass(frozen=True, slots=True)
class Completion:
    result: ChatResult
    deployment: Deployment
    decision: RouteDecision
    attempts: tuple[AttemptRecord, ...]
    cost_nanos: int


@dataclass(frozen=True, slots=True)
class StreamStart:
    """The stream is committed to this deployment; sent before the first delta."""

    deployment: Deployment
    decision: RouteDecision
    attempts: tuple[AttemptRecord, ...]


@dataclass(frozen=True, slots=True)
class StreamFinish:
    done: StreamDone
    deployment: Deployment
    decision: RouteDecision
    attempts: tuple[AttemptRecord, ...]
    cost_nanos: int


class RequestObserver(Protocol):
    """Sees every step of a request: telemetry events and metrics hang off this. Must not block."""

    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None: ...

    def on_attempt(
        self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str
    ) -> None: ...

    def on_completion(
        self, ctx: CallContext, request: ChatRequest, outcome: Completion | StreamFinish, latency_s: float
    ) -> None: ...

    def on_error(
        self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float
    ) -> None: ...


class NullObserver:
    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None:
        pass

    def on_attempt(self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str) -> None:
        pass

    def on_completion(
        self, ctx: CallContext, request: ChatRequest, outcome: Completion | StreamFinish, latency_s: float
    ) -> None:
        pass

    def on_error(self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Resilience:
    """The process-wide state and settings every request shares."""

    live: LiveState
    error_policy: ErrorPolicy
    retry: RetryConfig
    budget_config: RetryBudgetConfig
    budgets: dict[str, RetryBudget]  # per provider, so one outage cannot spend another's retries
    rng: random.Random
    stuck_after_p95_multiple: float | None = 4.0
    stuck_min_s: float = 1.0

    def budget(self, provider: str) -> RetryBudget:
        budget = self.budgets.get(provider)
        if budget is None:
            budget = self.budgets[provider] = RetryBudget(self.budget_config)
        return budget


class Run:
    """One request: its decision, attempts and failures, reported as they happen."""

    def __init__(
        self, ctx: CallContext, request: ChatRequest, observer: RequestObserver, live: LiveState
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.observer = observer
        self.live = live
        self.decision: RouteDecision | None = None
        self.attempts: list[AttemptRecord] = []
        self.failures: list[tuple[str, ProviderError]] = []
        self.closed = False

    def decided(self, decision: RouteDecision) -> RouteDecision:
        self.decision = decision
        self.observer.on_decision(self.ctx, decision)
        return decision

    def refused(self, decision: RouteDecision) -> None:
        """Routing excluded every candidate: the decision (empty chain, each candidate's reason)
        is still reported, before the error that ends the request."""
        self.observer.on_decision(self.ctx, decision)

    def decision_or_raise(self) -> RouteDecision:
        assert self.decision is not None, "attempts happen only after a decision"
        return self.decision

    def succeeded(
        self,
        d: Deployment,
        started: float,
        ttft: float | None,
        *,
        hedged: bool = False,
        usage: Usage | None = None,  # a used answer's usage goes with the completion, not here
    ) -> None:
        now = time.monotonic()
        self.live.record_success(d.key, now - started, ttft, now)
        self._add(
            d, _record(d, AttemptOutcome.SUCCESS, started, now, ttft=ttft, http_status=200, hedged=hedged)
        )

    def failed(self, d: Deployment, started: float, error: ProviderError, *, hedged: bool = False) -> None:
        now = time.monotonic()
        self.live.record_failure(d.key, error.error_class, now, error.retry_after_s)
        self.failures.append((d.key, error))
        self._add(d, _failure_record(d, started, now, error, hedged))

    def cancelled(self, d: Deployment, started: float, *, hedged: bool = False) -> None:
        now = time.monotonic()
        # Nobody's failure (caller left, or a hedge lost); still frees a half-open probe slot.
        self.live.record_failure(d.key, ErrorClass.CANCELLED, now)
        self._add(d, _cancelled_record(d, started, now, hedged))

    def abandoned(self, d: Deployment, started: float, *, hedged: bool = False) -> LateAttempt:
        """A hedge race's loser left to finish after the request is answered: cancelled as far as
        the caller's response is concerned. Its event waits for its real outcome: the returned
        LateAttempt records that in live state and publishes it in the place kept here."""
        self.attempts.append(_cancelled_record(d, started, time.monotonic(), hedged))
        return LateAttempt(self, len(self.attempts) - 1, d.upstream_model)

    def _add(self, d: Deployment, record: AttemptRecord) -> None:
        self.attempts.append(record)
        self.observer.on_attempt(self.ctx, len(self.attempts) - 1, record, d.upstream_model)

    def finished(self, outcome: Completion | StreamFinish) -> None:
        self.closed = True
        latency = time.monotonic() - self.ctx.started
        self.observer.on_completion(self.ctx, self.request, outcome, latency)

    def ended_with(self, error: BaseException) -> None:
        # Exactly one terminal report per request: a consumer that stops iterating right after
        # StreamFinish must not turn a completed stream into an error.
        if self.closed:
            return
        self.closed = True
        latency = time.monotonic() - self.ctx.started
        self.observer.on_error(self.ctx, error, len(self.attempts), latency)


class LateAttempt:
    """The attempt event of a hedge loser that ran on after its request was answered (see
    `Run.abandoned`), published when the attempt ends, with its real outcome. A loser that did
    answer carries its unused usage and exact cost: the upstream billed it, and cost rollups and
    budgets must see it even though no caller got the answer."""

    __slots__ = ("_index", "_run", "_upstream_model")

    def __init__(self, run: Run, index: int, upstream_model: str) -> None:
        self._run = run
        self._index = index
        self._upstream_model = upstream_model

    def succeeded(
        self,
        d: Deployment,
        started: float,
        ttft: float | None,
        *,
        hedged: bool = False,
        usage: Usage | None = None,
    ) -> None:
        now = time.monotonic()
        self._run.live.record_success(d.key, now - started, ttft, now)
        cost = d.price.cost_nanos(usage) if usage is not None else 0
        record = _record(
            d,
            AttemptOutcome.SUCCESS,
            started,
            now,
            ttft=ttft,
            http_status=200,
            hedged=hedged,
            unused_usage=usage,
            unused_cost_nanos=cost,
        )
        self._publish(record)

    def failed(self, d: Deployment, started: float, error: ProviderError, *, hedged: bool = False) -> None:
        now = time.monotonic()
        self._run.live.record_failure(d.key, error.error_class, now, error.retry_after_s)
        self._publish(_failure_record(d, started, now, error, hedged))

    def cancelled(self, d: Deployment, started: float, *, hedged: bool = False) -> None:
        now = time.monotonic()  # cancelled at shutdown (`Engine.aclose`)
        self._run.live.record_failure(d.key, ErrorClass.CANCELLED, now)
        self._publish(_cancelled_record(d, started, now, hedged))

    def _publish(self, record: AttemptRecord) -> None:
        run = self._run
        run.observer.on_attempt(run.ctx, self._index, record, self._upstream_model)


def _record(
    d: Deployment,
    outcome: AttemptOutcome,
    started: float,
    now: float,
    *,
    ttft: float | None = None,
    error_class: str = "",
    http_status: int = 0,
    retry_after_s: float | None = None,
    hedged: bool = False,
    unused_usage: Usage | None = None,
    unused_cost_nanos: int = 0,
) -> AttemptRecord:
    latency = now - started
    return AttemptRecord(
        provider=d.provider,
        model=d.model,
        outcome=outcome,
        latency_s=latency,
        error_class=error_class,
        http_status=http_status,
        time_to_first_token_s=ttft,
        started_at_unix_s=time.time() - latency,
        retry_after_s=retry_after_s,
        hedged=hedged,
        unused_usage=unused_usage,
        unused_cost_nanos=unused_cost_nanos,
    )


def _failure_record(
    d: Deployment, started: float, now: float, error: ProviderError, hedged: bool
) -> AttemptRecord:
    return _record(
        d,
        AttemptOutcome.ERROR,
        started,
        now,
        error_class=error.error_class.value,
        http_status=error.status_code,
        retry_after_s=error.retry_after_s,
        hedged=hedged,
    )


def _cancelled_record(d: Deployment, started: float, now: float, hedged: bool) -> AttemptRecord:
    return _record(
        d, AttemptOutcome.CANCELLED, started, now, error_class=ErrorClass.CANCELLED.value, hedged=hedged
    )


class Targets:
    """The deployments one request tries, in order, as failures come in."""

    def __init__(self, run: Run, catalog: Catalog, resilience: Resilience) -> None:
        self._run = run
        self._catalog = catalog
        self._res = resilience
        self._chain = run.decision_or_raise().chain
        self._queue = list(self._chain)
        self._tried: set[str] = set()
        self._retry: Deployment | None = None
        self._retries = 0

    def next(self) -> Deployment | None:
        """The next deployment to send to, or None when the plan is exhausted."""
        if self._retry is not None:
            deployment, self._retry = self._retry, None
            return deployment
        now = time.monotonic()
        while self._queue:
            key = self._queue.pop(0)
            self._tried.add(key)
            # The breaker may have opened since routing, or a half-open probe slot may be taken.
            if self._res.live.try_acquire(key, now):
                self._retries = 0
                deployment = self._catalog.by_key[key]
                self._res.budget(deployment.provider).record_request(now)
                return deployment
        return None

    def peek_hedge(self) -> Deployment | None:
        """A second deployment to race against the current one, if the budget and breaker allow."""
        if not self._queue:
            return None
        now = time.monotonic()
        deployment = self._catalog.by_key[self._queue[0]]
        # Hedges spend from the retry budget, so racing cannot amplify an outage either.
        if not self._res.budget(deployment.provider).try_spend(now):
            return None
        if not self._res.live.try_acquire(deployment.key, now):
            return None
        self._tried.add(self._queue.pop(0))
        return deployment

    def timeout_for(self, deployment: Deployment) -> float:
        """This attempt's timeout: the configured one, cut to the caller's deadline, and cut to a
        multiple of the deployment's recent P95 so a hung upstream counts as failed early."""
        now = time.monotonic()
        timeout = attempt_timeout(
            self._run.ctx.deadline - now, self._res.retry.per_attempt_timeout_s, self._res.retry.min_useful_s
        )
        if timeout is None:
            raise DeadlineExceededError("the caller's deadline leaves no time for another attempt")
        multiple = self._res.stuck_after_p95_multiple
        p95 = self._res.live.latency_p95_s(deployment.key, now) if multiple else None
        if multiple and p95 is not None:
            timeout = min(timeout, max(p95 * multiple, self._res.stuck_min_s))
        return timeout

    async def after_failure(self, deployment: Deployment, error: ProviderError) -> None:
        """Decide the next step after `deployment` failed: retry it (after a backoff), fall back,
        or raise (the caller's invalid request, or the deadline leaves no room)."""
        now = time.monotonic()
        remaining = self._run.ctx.deadline - now
        if remaining <= 0:
            raise DeadlineExceededError(
                f"deadline exceeded after {deployment.key} failed ({error.error_class.value})"
            )
        failure = Failure(error.error_class, self._retries, remaining, error.retry_after_s)
        budget = self._res.budget(deployment.provider)
        recovery = after_failure(
            failure, self._res.error_policy, self._res.retry, budget, now, self._res.rng.random()
        )
        live = self._res.live
        if recovery.action is Action.RETRY and live.unavailable_reason(deployment.key, now) is None:
            await asyncio.sleep(recovery.delay_s)
            # Admission is checked when the retry is sent, as for any other target: the breaker
            # may have opened during the backoff (other requests' failures), and a half-open probe
            # slot is not held while sleeping.
            if live.try_acquire(deployment.key, time.monotonic()):
                self._retries += 1
                self._retry = deployment
                return
        if recovery.action is Action.STOP:
            if error.error_class.is_callers_fault:
                raise UpstreamRejectedError(deployment.key, error)
            raise AllAttemptsFailedError(self._run.failures)
        self._queue = list(
            remaining_chain(
                self._chain,
                deployment.key,
                self._catalog,
                larger_context=recovery.larger_context,
                tried=self._tried,
            )
        )

    def exhausted(self) -> AllAttemptsFailedError:
        return AllAttemptsFailedError(self._run.failures)
