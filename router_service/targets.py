"""Which deployment one request tries next, as its failures come in.

`Targets` turns a routing decision into a sequence of attempts: the chain in order, retries of the
same deployment when the error policy and the retry budget allow, fallbacks by error class
(context-length errors only go to larger windows), deployments whose breaker refuses skipped.
Breaker admission goes through the request's `RequestRecorder` (the one writer of live state);
retry budgets are spent here. Pure decisions live in `routing/` and `resilience/`; this module
only sequences them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from router_service.attempt_recorder import RequestRecorder
from router_service.catalog import Catalog, Deployment
from router_service.errors import (
    AllAttemptsFailedError,
    DeadlineExceededError,
    ProviderError,
    UpstreamRejectedError,
)
from router_service.resilience.error_policy import ErrorPolicy
from router_service.resilience.recovery import Action, Failure, after_failure
from router_service.resilience.retry import (
    RetryBudget,
    RetryBudgetConfig,
    RetryBudgets,
    RetryConfig,
    attempt_timeout,
)
from router_service.routing.fallback import remaining_chain


@dataclass(frozen=True, slots=True)
class RetryRules:
    """The retry, fallback and timeout settings of one config version (replaced on reload)."""

    error_policy: ErrorPolicy
    retry: RetryConfig
    budget_config: RetryBudgetConfig
    stuck_after_p95_multiple: float | None = 4.0
    stuck_min_s: float = 1.0


class Targets:
    """The deployments one request tries, in order, as failures come in."""

    def __init__(
        self,
        recorder: RequestRecorder,
        catalog: Catalog,
        rules: RetryRules,
        budgets: RetryBudgets,
        rng: random.Random,
    ) -> None:
        self._recorder = recorder
        self._clock = recorder.clock
        self._catalog = catalog
        self._rules = rules
        self._budgets = budgets
        self._rng = rng
        self._chain = recorder.decision_or_raise().chain
        self._queue = list(self._chain)
        self._tried: set[str] = set()
        self._retry: Deployment | None = None
        self._retries = 0

    def next(self) -> Deployment | None:
        """The next deployment to send to, or None when the plan is exhausted."""
        if self._retry is not None:
            deployment, self._retry = self._retry, None
            return deployment
        while self._queue:
            key = self._queue.pop(0)
            self._tried.add(key)
            # The breaker may have opened since routing, or a half-open probe slot may be taken.
            if self._recorder.admit(key):
                self._retries = 0
                deployment = self._catalog.by_key[key]
                self._budget(deployment).record_request(self._clock.monotonic())
                return deployment
        return None

    def peek_hedge(self) -> Deployment | None:
        """A second deployment to race against the current one, if the budget and breaker allow."""
        if not self._queue:
            return None
        deployment = self._catalog.by_key[self._queue[0]]
        # Hedges spend from the retry budget, so racing cannot amplify an outage either.
        if not self._budget(deployment).try_spend(self._clock.monotonic()):
            return None
        if not self._recorder.admit(deployment.key):
            return None
        self._tried.add(self._queue.pop(0))
        return deployment

    def timeout_for(self, deployment: Deployment) -> float:
        """This attempt's timeout: the configured one, cut to the caller's deadline, and cut to a
        multiple of the deployment's recent P95 so a hung upstream counts as failed early."""
        now = self._clock.monotonic()
        retry = self._rules.retry
        timeout = attempt_timeout(
            self._recorder.ctx.deadline - now, retry.per_attempt_timeout_s, retry.min_useful_s
        )
        if timeout is None:
            raise DeadlineExceededError("the caller's deadline leaves no time for another attempt")
        multiple = self._rules.stuck_after_p95_multiple
        p95 = self._recorder.live.latency_p95_s(deployment.key, now) if multiple else None
        if multiple and p95 is not None:
            timeout = min(timeout, max(p95 * multiple, self._rules.stuck_min_s))
        return timeout

    async def after_failure(self, deployment: Deployment, error: ProviderError) -> None:
        """Decide the next step after `deployment` failed: retry it (after a backoff), fall back,
        or raise (the caller's invalid request, or the deadline leaves no room)."""
        now = self._clock.monotonic()
        remaining = self._recorder.ctx.deadline - now
        if remaining <= 0:
            raise DeadlineExceededError(
                f"deadline exceeded after {deployment.key} failed ({error.error_class.value})"
            )
        failure = Failure(error.error_class, self._retries, remaining, error.retry_after_s)
        rules = self._rules
        recovery = after_failure(
            failure, rules.error_policy, rules.retry, self._budget(deployment), now, self._rng.random()
        )
        live = self._recorder.live
        if recovery.action is Action.RETRY and live.unavailable_reason(deployment.key, now) is None:
            await self._clock.sleep(recovery.delay_s)
            # Admission is checked when the retry is sent, as for any other target: the breaker
            # may have opened during the backoff (other requests' failures), and a half-open probe
            # slot is not held while sleeping.
            if self._recorder.admit(deployment.key):
                self._retries += 1
                self._retry = deployment
                return
        if recovery.action is Action.STOP:
            if error.error_class.is_callers_fault:
                raise UpstreamRejectedError(deployment.key, error)
            raise AllAttemptsFailedError(self._recorder.failures)
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
        return AllAttemptsFailedError(self._recorder.failures)

    def _budget(self, deployment: Deployment) -> RetryBudget:
        return self._budgets.for_provider(deployment.provider, self._rules.budget_config)
