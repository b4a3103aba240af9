"""Runs a routing decision: attempts inside the caller's deadline, retries, fallbacks, hedges.

The only loop over targets. Which targets, in what order, is `routing.Router`; what to do after a
failure is the error policy and retry budget (`targets.Targets`); breakers and latency live in
`resilience.LiveState`, which only the request's `attempt_recorder.RequestRecorder` updates (and
reports to a non-blocking observer). Time is the injected `Clock`: no timer here reads the system
clock, so tests run hedges, timeouts and backoffs on virtual time. The engine knows nothing about
gRPC or HTTP, and builds none of its collaborators (`EngineParts`; composition.py makes them).

One request, one path: `complete`/`stream` open a `RequestRecorder` and the request's hold on its
limits (`governance.hold_for`), `_admit` looks the request up in the cache step (`cache_step`),
routes it and has the hold reserve it (the one step before anything is sent: the place for checks
that refuse or answer a request without an upstream), the cache step answers a hit or shares or
stores a miss's answer, the target loop attempts, and the recorder's `finished`/`ended_with` and
the hold's `settle`/`release` settle the request, exactly once whatever happened. Without a cache
or limits the steps are null objects (`NO_CACHE`, `NO_LIMITS`): the path is the same.

Streams fall back only before their first event reaches the caller; after that a failure raises
StreamInterruptedError (never a clean finish).

Hedging (the race, and the losers left to run on) is `hedge_race.HedgeRaces`; `aclose` cancels
what it still runs at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field

from router_service.attempt_recorder import Attempt, RequestRecorder
from router_service.cache.cache import ResponseCache
from router_service.cache_step import CachedHit, Found, cache_step
from router_service.call import (
    CacheHit,
    CallContext,
    Completion,
    NullObserver,
    RequestObserver,
    StreamFinish,
    StreamStart,
)
from router_service.catalog import Deployment
from router_service.clock import Clock
from router_service.domain import ChatRequest, ChatResult, RouteDecision, StreamDone, StreamEvent, TextDelta
from router_service.errors import (
    ErrorClass,
    NoEligibleCandidateError,
    ProviderError,
    StreamInterruptedError,
    UnknownModelError,
)
from router_service.fleet.signals import FleetSignals
from router_service.governance import Governance, Hold, hold_for
from router_service.hedge_race import HedgeRaces, Outcome
from router_service.identity.access import allowed_models
from router_service.providers.base import ProviderAdapter
from router_service.resilience.live_state import LiveState
from router_service.resilience.loop_stall import stalled_at_deadline
from router_service.resilience.retry import RetryBudgets
from router_service.routing.hedge import hedge_delay_s
from router_service.routing.learning import QualityLearner
from router_service.routing.router import Router
from router_service.settings import RuntimeConfig
from router_service.targets import RetryRules, Targets

__all__ = [
    "CallContext",
    "Completion",
    "Engine",
    "EngineParts",
    "NullObserver",
    "RequestObserver",
    "StreamFinish",
    "StreamItem",
    "StreamStart",
]

log = logging.getLogger(__name__)

StreamItem = StreamStart | StreamEvent | StreamFinish


@dataclass(frozen=True, slots=True)
class EngineParts:
    """What an `Engine` is given rather than builds: made once by the composition root (composition.py),
    and kept across config reloads, because health knowledge, spent retries, time and the random
    stream are not config."""

    live: LiveState
    budgets: RetryBudgets
    clock: Clock
    rng: random.Random  # retry jitter and routing draws; seed it for reproducible tests
    observer: RequestObserver = field(default_factory=NullObserver)
    # What routing reads when the app feeds a fleet view from the snapshot topics: `live` merged
    # with it. Resilience (breakers, stuck attempts) stays on local state alone.
    fleet: FleetSignals | None = None
    # Budgets and rate limits (router_service/governance.py); None: nothing is limited.
    governance: Governance | None = None
    # The response cache (router_service/cache/); None: off, the request path skips it.
    cache: ResponseCache | None = None
    # The quality learner policies using `learned` route with (router_service/quality_learning/).
    learner: QualityLearner | None = None


@dataclass(frozen=True, slots=True)
class _Admitted:
    """What admission decided: the route, and the cache step's part (`cache_step.Found`): a hit
    to answer with now, a miss to store the fresh answer under, or None (no cache, or this answer
    must not be stored)."""

    decision: RouteDecision
    found: Found = None


@dataclass(frozen=True, slots=True)
class _Setup:
    """Everything a config reload replaces, swapped as one reference: a request reads it once at
    its start and keeps using that version, so a reload never mixes two configs in one request."""

    config: RuntimeConfig
    adapters: Mapping[str, ProviderAdapter]
    router: Router
    rules: RetryRules


class Engine:
    def __init__(
        self, config: RuntimeConfig, adapters: Mapping[str, ProviderAdapter], parts: EngineParts
    ) -> None:
        self._parts = parts
        self._clock = parts.clock
        self.live = parts.live
        self.fleet = parts.fleet
        self._signals: FleetSignals | LiveState = parts.fleet or parts.live
        self._cache = cache_step(parts.cache, parts.clock)
        self._setup = self._build(config, adapters)
        self._races = HedgeRaces(parts.live, parts.clock)

    async def aclose(self) -> None:
        """Cancel the hedge losers still running in the background (at shutdown)."""
        await self._races.aclose()

    def reconfigure(self, config: RuntimeConfig, adapters: Mapping[str, ProviderAdapter]) -> None:
        """Swap catalog, policies and adapters atomically; in-flight requests finish on the old ones.
        Live-state settings (window, breaker, error policy) keep their startup values."""
        self._setup = self._build(config, adapters)

    @property
    def config(self) -> RuntimeConfig:
        return self._setup.config

    @property
    def clock(self) -> Clock:
        """The clock requests run on: a caller's `CallContext` deadline is a time on it."""
        return self._clock

    def _build(self, config: RuntimeConfig, adapters: Mapping[str, ProviderAdapter]) -> _Setup:
        router = Router(
            config.catalog,
            config.policies,
            config.routing.default_policy,
            env=config.routing_env,
            rng=self._parts.rng,
            learner=self._parts.learner,
        )
        rules = RetryRules(
            error_policy=config.live_state.error_policy,
            retry=config.retry,
            budget_config=config.retry_budget,
            stuck_after_p95_multiple=config.stuck_after_p95_multiple,
            stuck_min_s=config.stuck_min_s,
        )
        return _Setup(config, adapters, router, rules)

    # --- decisions ---------------------------------------------------------------------------

    def route(
        self, request: ChatRequest, *, streaming: bool = False, allowed_models: frozenset[str] | None = None
    ) -> RouteDecision:
        """`allowed_models`: the caller's key scope (catalog models or deployment keys); None: any."""
        return self._route(self._setup, request, streaming, allowed_models)

    def _route(
        self, setup: _Setup, request: ChatRequest, streaming: bool, allowed_models: frozenset[str] | None
    ) -> RouteDecision:
        name = request.hints.policy
        if name and name not in setup.config.policies:
            raise UnknownModelError("policy", name)
        now = self._clock.monotonic()
        signals, fleet = self._signals, self.fleet
        quality = fleet.quality_view() if fleet is not None else None
        return setup.router.route(
            request,
            signals,
            now,
            live=signals,
            quality=quality,
            streaming=streaming,
            allowed_models=allowed_models,
        )

    # --- unary --------------------------------------------------------------------------------

    async def complete(self, request: ChatRequest, ctx: CallContext) -> Completion:
        parts = self._parts
        run = RequestRecorder(ctx, request, parts.observer, parts.live, parts.clock)
        hold = hold_for(parts.governance)
        try:
            completion = await self._complete(run, self._setup, hold)
        except BaseException as exc:
            run.ended_with(exc)
            hold.release()
            raise
        run.finished(completion)
        hold.settle(completion.cost_nanos, completion.result.usage)
        return completion

    async def _complete(self, run: RequestRecorder, setup: _Setup, hold: Hold) -> Completion:
        admitted = await self._admit(run, setup, False, hold)
        decision = admitted.decision
        return await self._cache.complete(
            decision, admitted.found, lambda: self._dispatch(run, setup, decision, hold)
        )

    async def _admit(self, run: RequestRecorder, setup: _Setup, streaming: bool, hold: Hold) -> _Admitted:
        """Admit the request: look it up in the cache, route it, reserve its limits and report
        the decision. The one step, shared by unary and streaming calls, between a request's
        arrival and its first upstream attempt: a check that refuses a request (a budget, a rate
        limit) or answers it without an upstream (a cache) belongs here. Whatever it raises is
        settled like any other end, by the recorder's `ended_with` (and the hold's release),
        exactly once. When nothing is eligible, the decision that says why is reported too,
        before the error ends the request.

        Order: the cache lookup (a hit pays for neither routing nor limits: it sends nothing
        upstream and costs nothing; cache_step.py), routing, then the limits (governance.py). A
        miss is stored only if the limits left the policy as it was keyed: a downgraded answer
        must not answer later calls of the dearer policy."""
        try:
            found = await self._cache.look_up(run.ctx, run.request, setup.config)
            if isinstance(found, CachedHit):
                return _Admitted(run.decided(found.decision), found)
            allowed = allowed_models(run.ctx.identity, setup.config.catalog)
            routed = self._route(setup, run.request, streaming, allowed)
            decision = await hold.admit(
                run.ctx,
                run.request,
                routed,
                setup.config,
                lambda moved: self._route(setup, moved, streaming, allowed),  # a downgrade
            )
        except NoEligibleCandidateError as exc:
            if exc.decision is not None:
                run.refused(exc.decision)
            raise
        return _Admitted(run.decided(decision), found if decision.policy == routed.policy else None)

    async def cache_status(self, request: ChatRequest, ctx: CallContext) -> CacheHit | None:
        """For `Route`: whether a Complete or Stream of this caller would be answered from the
        cache now, and by how old an answer (the entry is only read). Looked up as a call would,
        before routing."""
        return await self._cache.status(ctx, request, self._setup.config)

    async def _dispatch(
        self, run: RequestRecorder, setup: _Setup, decision: RouteDecision, hold: Hold
    ) -> Completion:
        """The attempts of an admitted unary request, until one answers or the targets run out."""
        targets = Targets(run, setup.config.catalog, setup.rules, self._parts.budgets, self._parts.rng)
        policy = setup.config.policies.get(decision.policy)
        first = True
        while (deployment := targets.next()) is not None:
            delay = None
            if first and policy is not None:
                delay = hedge_delay_s(policy.hedge, self._signals, deployment.key, self._clock.monotonic())
            first = False
            if delay is None:
                timeout = targets.timeout_for(deployment)
                attempt = run.start(deployment)
                outcomes = [(deployment, await self._attempt(setup, run, attempt, timeout))]
            else:
                call = functools.partial(self._attempt, setup, run)
                outcomes = await self._races.race(call, run, targets, deployment, delay, hold)
            for used, (result, _) in outcomes:
                if result is not None:
                    return self._completion(run, used, result)
            # Both racers failed (or the only one did): the last failure decides what comes next.
            used, (_, error) = outcomes[-1]
            assert error is not None
            await targets.after_failure(used, error)
        raise targets.exhausted()

    def _completion(self, run: RequestRecorder, deployment: Deployment, result: ChatResult) -> Completion:
        return Completion(
            result=result,
            deployment=deployment,
            decision=run.decision_or_raise(),
            attempts=tuple(run.attempts),
            cost_nanos=deployment.price.cost_nanos(result.usage),
        )

    async def _attempt(
        self, setup: _Setup, run: RequestRecorder, attempt: Attempt, timeout_s: float
    ) -> Outcome:
        """One upstream call, its outcome recorded; returns (result, None) or (None, error)."""
        d = attempt.deployment
        deadline = self._clock.monotonic() + timeout_s
        try:
            async with self._clock.timeout(timeout_s):
                result = await setup.adapters[d.provider].complete(run.request, d.upstream_model)
        except asyncio.CancelledError:
            attempt.cancelled()
            raise
        except (ProviderError, TimeoutError) as exc:
            error = _as_provider_error(exc, timeout_s, self._clock.monotonic() - deadline)
            attempt.failed(error)
            return None, error
        except BaseException:
            attempt.abort()
            raise
        attempt.succeeded(usage=result.usage)
        return result, None

    # --- streaming ----------------------------------------------------------------------------

    async def stream(self, request: ChatRequest, ctx: CallContext) -> AsyncGenerator[StreamItem, None]:
        """Yields StreamStart, then deltas, then StreamFinish."""
        parts = self._parts
        run = RequestRecorder(ctx, request, parts.observer, parts.live, parts.clock)
        hold = hold_for(parts.governance)
        setup = self._setup
        try:
            admitted = await self._admit(run, setup, True, hold)
            answer = self._cache.stream(
                admitted.decision, admitted.found, setup.config.catalog, lambda: self._stream(run, setup)
            )
            # aclosing: when our consumer stops early, the inner generators (and with them the
            # upstream HTTP response) are closed now, not whenever they are garbage-collected.
            async with contextlib.aclosing(answer) as items:
                async for item in items:
                    if isinstance(item, StreamFinish):
                        run.finished(item)  # before yielding: the consumer may stop right after it
                        hold.settle(item.cost_nanos, item.done.usage)  # the stream's real tokens
                    yield item
        except BaseException as exc:
            # GeneratorExit: the consumer stopped iterating (caller went away).
            run.ended_with(exc)
            hold.release()  # nothing after a settle: only the first of the two counts
            raise

    async def _stream(self, run: RequestRecorder, setup: _Setup) -> AsyncGenerator[StreamItem, None]:
        """The attempts of an admitted stream until one sends its first event (then relayed to
        its end), or the targets run out."""
        targets = Targets(run, setup.config.catalog, setup.rules, self._parts.budgets, self._parts.rng)
        routing = setup.config.routing
        while (deployment := targets.next()) is not None:
            upstream = setup.adapters[deployment.provider].stream(run.request, deployment.upstream_model)
            timeout = min(targets.timeout_for(deployment), routing.first_token_timeout_s)
            attempt = run.start(deployment)
            first = await self._first_event(upstream, attempt, timeout)
            if isinstance(first, ProviderError):
                await targets.after_failure(deployment, first)
                continue
            relay = self._relay(run, upstream, first, attempt, routing.stream_stall_timeout_s)
            async with contextlib.aclosing(relay) as items:
                async for item in items:
                    yield item
            return
        raise targets.exhausted()

    async def _first_event(
        self, upstream: AsyncGenerator[StreamEvent, None], attempt: Attempt, timeout_s: float
    ) -> StreamEvent | ProviderError:
        """A stream attempt's first event, or its failure (recorded, the upstream closed)."""
        deadline = self._clock.monotonic() + timeout_s
        try:
            async with self._clock.timeout(timeout_s):
                return await anext(upstream)
        except asyncio.CancelledError:
            attempt.cancelled()
            await upstream.aclose()
            raise
        except (ProviderError, TimeoutError, StopAsyncIteration) as exc:
            overdue_s = self._clock.monotonic() - deadline
            await upstream.aclose()
            error = _as_provider_error(exc, timeout_s, overdue_s)
            attempt.failed(error)
            return error
        except BaseException:
            attempt.abort()
            await upstream.aclose()
            raise

    async def _relay(
        self,
        run: RequestRecorder,
        upstream: AsyncGenerator[StreamEvent, None],
        first: StreamEvent,
        attempt: Attempt,
        stall_s: float,
    ) -> AsyncGenerator[StreamItem, None]:
        deployment = attempt.deployment
        ttft = self._clock.monotonic() - attempt.started
        delivered = 0
        event: StreamEvent = first
        try:
            yield StreamStart(deployment, run.decision_or_raise(), tuple(run.attempts))
            while not isinstance(event, StreamDone):
                if isinstance(event, TextDelta):
                    delivered += len(event.text)
                yield event
                async with self._clock.timeout(stall_s):
                    event = await anext(upstream)
        except (StopAsyncIteration, TimeoutError, ProviderError) as exc:
            error = _as_provider_error(exc, stall_s)
            attempt.failed(error)
            raise StreamInterruptedError(deployment.key, error, delivered) from None
        except (asyncio.CancelledError, GeneratorExit):
            attempt.cancelled()
            raise
        except BaseException:
            attempt.abort()
            raise
        finally:
            await upstream.aclose()
        attempt.succeeded(ttft)
        cost = deployment.price.cost_nanos(event.usage)
        yield StreamFinish(event, deployment, run.decision_or_raise(), tuple(run.attempts), cost)


def _as_provider_error(exc: BaseException, timeout_s: float, overdue_s: float = 0.0) -> ProviderError:
    """`overdue_s`: how long after its deadline a timeout fired (a stalled loop fires it late)."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, StopAsyncIteration):
        return ProviderError(ErrorClass.BAD_RESPONSE, "upstream stream ended without its terminal event")
    if stalled_at_deadline(timeout_s, overdue_s):
        return ProviderError(
            ErrorClass.TIMEOUT,
            f"no answer within {timeout_s:.3g}s: the router's event loop was blocked at the deadline"
            f" (the timer fired {overdue_s:.3g}s late), so it does not count against the deployment",
            blames_upstream=False,
        )
    return ProviderError(ErrorClass.TIMEOUT, f"no answer within {timeout_s:.3g}s")
