"""Runs a routing decision: attempts inside the caller's deadline, retries, fallbacks, hedges.

The only loop over targets. Which targets, in what order, is `routing.Router`; what to do after a
failure is the error policy and retry budget (`request_run.Targets`); breakers and latency live in
`resilience.LiveState`, updated after every attempt; telemetry goes to a non-blocking observer.
The engine knows nothing about gRPC or HTTP.

Streams fall back only before their first event reaches the caller; after that a failure raises
StreamInterruptedError (never a clean finish).

Hedging: the first good answer wins and the loser is cancelled, unless the loser's deployment has
answered nothing since the loser was sent. Then the loser is left to finish (or hit its own
attempt timeout) in the background: a hung deployment behind a hedging policy must still fail its
attempts and be taken out of rotation, instead of only ever losing races (which say nothing about
health) while keeping its traffic. Its attempt event is published when it ends, with its real
outcome and, when it answered, the cost of that unused answer (`request_run.LateAttempt`).
`aclose` cancels what is still running at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

from router_service.catalog import Deployment
from router_service.domain import ChatRequest, ChatResult, RouteDecision, StreamDone, StreamEvent, TextDelta
from router_service.errors import (
    ErrorClass,
    NoEligibleCandidateError,
    ProviderError,
    StreamInterruptedError,
    UnknownModelError,
)
from router_service.fleet.signals import FleetSignals
from router_service.identity.access import allowed_models
from router_service.providers.base import ProviderAdapter
from router_service.request_run import (
    CallContext,
    Completion,
    LateAttempt,
    NullObserver,
    RequestObserver,
    Resilience,
    Run,
    StreamFinish,
    StreamStart,
    Targets,
)
from router_service.resilience.live_state import LiveState
from router_service.resilience.retry import RetryBudget
from router_service.routing.hedge import hedge_delay_s
from router_service.routing.router import Router
from router_service.settings import RuntimeConfig

__all__ = [
    "CallContext",
    "Completion",
    "Engine",
    "NullObserver",
    "RequestObserver",
    "StreamFinish",
    "StreamItem",
    "StreamStart",
]

log = logging.getLogger(__name__)

StreamItem = StreamStart | StreamEvent | StreamFinish
_Outcome = tuple[ChatResult | None, ProviderError | None]


@dataclass(frozen=True, slots=True)
class _Setup:
    """Everything a config reload replaces, swapped as one reference: a request reads it once at
    its start and keeps using that version, so a reload never mixes two configs in one request."""

    config: RuntimeConfig
    adapters: Mapping[str, ProviderAdapter]
    router: Router
    res: Resilience


class Engine:
    def __init__(
        self,
        config: RuntimeConfig,
        adapters: Mapping[str, ProviderAdapter],
        *,
        observer: RequestObserver | None = None,
        live: LiveState | None = None,
        seed: int | None = None,
    ) -> None:
        self._observer: RequestObserver = observer or NullObserver()
        # Live state, retry budgets and randomness outlive reloads: health knowledge is not config.
        self.live = live or LiveState(config.live_state)
        # What routing reads: this instance's live state, merged with the fleet view when there is one
        # (the app feeds `fleet` from the snapshot topics). Resilience (breakers, stuck attempts)
        # stays on local state alone.
        self.fleet = FleetSignals(self.live, config.fleet) if config.fleet is not None else None
        self._signals: FleetSignals | LiveState = self.fleet or self.live
        self._budgets: dict[str, RetryBudget] = {}
        self._rng = random.Random(seed)
        self._seed = seed
        self._setup = self._build(config, adapters)
        self._detached: set[asyncio.Task[_Outcome]] = set()  # hedge losers left to finish

    async def aclose(self) -> None:
        """Cancel the hedge losers still running in the background (at shutdown)."""
        tasks = list(self._detached)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def reconfigure(self, config: RuntimeConfig, adapters: Mapping[str, ProviderAdapter]) -> None:
        """Swap catalog, policies and adapters atomically; in-flight requests finish on the old ones.
        Live-state settings (window, breaker, error policy) keep their startup values."""
        self._setup = self._build(config, adapters)

    @property
    def config(self) -> RuntimeConfig:
        return self._setup.config

    def _build(self, config: RuntimeConfig, adapters: Mapping[str, ProviderAdapter]) -> _Setup:
        router = Router(
            config.catalog,
            config.policies,
            config.routing.default_policy,
            env=config.routing_env,
            seed=self._seed,
        )
        res = Resilience(
            live=self.live,
            error_policy=config.live_state.error_policy,
            retry=config.retry,
            budget_config=config.retry_budget,
            budgets=self._budgets,
            rng=self._rng,
            stuck_after_p95_multiple=config.stuck_after_p95_multiple,
            stuck_min_s=config.stuck_min_s,
        )
        return _Setup(config, adapters, router, res)

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
        now = time.monotonic()
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
        run = Run(ctx, request, self._observer, self.live)
        try:
            completion = await self._complete(run, self._setup)
        except BaseException as exc:
            run.ended_with(exc)
            raise
        run.finished(completion)
        return completion

    def _decide(self, run: Run, setup: _Setup, streaming: bool) -> RouteDecision:
        """Route and report the decision; when nothing is eligible, the decision that says why
        is reported too, before the error ends the request."""
        try:
            allowed = allowed_models(run.ctx.identity, setup.config.catalog)
            decision = self._route(setup, run.request, streaming, allowed)
        except NoEligibleCandidateError as exc:
            if exc.decision is not None:
                run.refused(exc.decision)
            raise
        return run.decided(decision)

    async def _complete(self, run: Run, setup: _Setup) -> Completion:
        decision = self._decide(run, setup, False)
        targets = Targets(run, setup.config.catalog, setup.res)
        policy = setup.config.policies.get(decision.policy)
        first = True
        while (deployment := targets.next()) is not None:
            delay = None
            if first and policy is not None:
                delay = hedge_delay_s(policy.hedge, self._signals, deployment.key, time.monotonic())
            first = False
            if delay is None:
                outcomes = [(deployment, await self._attempt(setup, run, targets, deployment))]
            else:
                outcomes = await self._race(setup, run, targets, deployment, delay)
            for used, (result, _) in outcomes:
                if result is not None:
                    return self._completion(run, used, result)
            # Both racers failed (or the only one did): the last failure decides what comes next.
            used, (_, error) = outcomes[-1]
            assert error is not None
            await targets.after_failure(used, error)
        raise targets.exhausted()

    def _completion(self, run: Run, deployment: Deployment, result: ChatResult) -> Completion:
        return Completion(
            result=result,
            deployment=deployment,
            decision=run.decision_or_raise(),
            attempts=tuple(run.attempts),
            cost_nanos=deployment.price.cost_nanos(result.usage),
        )

    async def _attempt(
        self,
        setup: _Setup,
        run: Run,
        targets: Targets,
        d: Deployment,
        *,
        racer: _Racer | None = None,
    ) -> _Outcome:
        """One upstream call, recorded; returns (result, None) or (None, error). A racer left to
        finish after the answer (see `_race`) reports through its LateAttempt instead. Its
        `hedged` flag is read when the attempt ends: the first choice joins a race only once
        the hedge is sent."""
        timeout = targets.timeout_for(d)
        started = time.monotonic()
        if racer is not None:
            racer.started = started
        self.live.begin(d.key, started)
        try:
            async with asyncio.timeout(timeout):
                result = await setup.adapters[d.provider].complete(run.request, d.upstream_model)
        except asyncio.CancelledError:
            self._recorder(run, racer).cancelled(d, started, hedged=_hedged(racer))
            raise
        except (ProviderError, TimeoutError) as exc:
            error = _as_provider_error(exc, timeout)
            self._recorder(run, racer).failed(d, started, error, hedged=_hedged(racer))
            return None, error
        finally:
            self.live.end(d.key)
        self._recorder(run, racer).succeeded(d, started, None, hedged=_hedged(racer), usage=result.usage)
        return result, None

    def _recorder(self, run: Run, racer: _Racer | None) -> Run | LateAttempt:
        late = racer.late if racer is not None else None
        return late if late is not None else run

    async def _race(
        self, setup: _Setup, run: Run, targets: Targets, first: Deployment, delay_s: float
    ) -> list[tuple[Deployment, _Outcome]]:
        """Hedge: if `first` has not answered after `delay_s`, race the next deployment. The first
        good answer wins. A loser whose deployment has answered something since the loser was sent
        is cancelled (recorded as a cancelled attempt); one whose deployment has answered nothing
        is left to finish in the background (see the module docstring), so that a hung
        deployment's attempts still time out and count against its health."""
        racers: dict[asyncio.Task[_Outcome], _Racer] = {}

        def start(d: Deployment, hedged: bool) -> None:
            racer = _Racer(d, hedged)
            task = asyncio.create_task(self._attempt(setup, run, targets, d, racer=racer))
            racers[task] = racer

        start(first, False)
        won = False
        try:
            done, _ = await asyncio.wait(racers, timeout=delay_s)
            second = None if done else targets.peek_hedge()
            if second is not None:
                # From now on the first choice races too: both attempts are marked hedged, the
                # loser as well as the winner (events.proto AttemptEvent.hedged).
                for racer in racers.values():
                    racer.hedged = True
                start(second, True)
            outcomes: list[tuple[Deployment, _Outcome]] = []
            pending = set(racers)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    outcome = task.result()
                    outcomes.append((racers[task].deployment, outcome))
                    if outcome[0] is not None:
                        won = True
                        return [(racers[task].deployment, outcome)]
            return outcomes
        finally:
            cancelled = []
            for task, racer in racers.items():
                if task.done():
                    continue
                if won and not self.live.answered_since(racer.deployment.key, racer.started):
                    self._detach(run, task, racer)
                else:
                    task.cancel()
                    cancelled.append(task)
            await asyncio.gather(*cancelled, return_exceptions=True)

    def _detach(self, run: Run, task: asyncio.Task[_Outcome], racer: _Racer) -> None:
        racer.late = run.abandoned(racer.deployment, racer.started, hedged=racer.hedged)
        self._detached.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[_Outcome]) -> None:
        self._detached.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("hedge loser failed unexpectedly", exc_info=exc)

    # --- streaming ----------------------------------------------------------------------------

    async def stream(self, request: ChatRequest, ctx: CallContext) -> AsyncGenerator[StreamItem, None]:
        """Yields StreamStart, then deltas, then StreamFinish."""
        run = Run(ctx, request, self._observer, self.live)
        try:
            # aclosing: when our consumer stops early, the inner generators (and with them the
            # upstream HTTP response) are closed now, not whenever they are garbage-collected.
            async with contextlib.aclosing(self._stream(run, self._setup)) as items:
                async for item in items:
                    if isinstance(item, StreamFinish):
                        run.finished(item)  # before yielding: the consumer may stop right after it
                    yield item
        except BaseException as exc:
            # GeneratorExit: the consumer stopped iterating (caller went away).
            run.ended_with(exc)
            raise

    async def _stream(self, run: Run, setup: _Setup) -> AsyncGenerator[StreamItem, None]:
        self._decide(run, setup, True)
        targets = Targets(run, setup.config.catalog, setup.res)
        routing = setup.config.routing
        while (deployment := targets.next()) is not None:
            upstream = setup.adapters[deployment.provider].stream(run.request, deployment.upstream_model)
            timeout = min(targets.timeout_for(deployment), routing.first_token_timeout_s)
            started = time.monotonic()
            self.live.begin(deployment.key, started)
            try:
                async with asyncio.timeout(timeout):
                    first = await anext(upstream)
            except asyncio.CancelledError:
                self.live.end(deployment.key)
                run.cancelled(deployment, started)
                await upstream.aclose()
                raise
            except (ProviderError, TimeoutError, StopAsyncIteration) as exc:
                self.live.end(deployment.key)
                await upstream.aclose()
                error = _as_provider_error(exc, timeout)
                run.failed(deployment, started, error)
                await targets.after_failure(deployment, error)
                continue
            relay = self._relay(run, upstream, first, deployment, started, routing.stream_stall_timeout_s)
            async with contextlib.aclosing(relay) as items:
                async for item in items:
                    yield item
            return
        raise targets.exhausted()

    async def _relay(
        self,
        run: Run,
        upstream: AsyncGenerator[StreamEvent, None],
        first: StreamEvent,
        deployment: Deployment,
        started: float,
        stall_s: float,
    ) -> AsyncGenerator[StreamItem, None]:
        ttft = time.monotonic() - started
        delivered = 0
        event: StreamEvent = first
        try:
            yield StreamStart(deployment, run.decision_or_raise(), tuple(run.attempts))
            while not isinstance(event, StreamDone):
                if isinstance(event, TextDelta):
                    delivered += len(event.text)
                yield event
                async with asyncio.timeout(stall_s):
                    event = await anext(upstream)
        except (StopAsyncIteration, TimeoutError, ProviderError) as exc:
            error = _as_provider_error(exc, stall_s)
            run.failed(deployment, started, error)
            raise StreamInterruptedError(deployment.key, error, delivered) from None
        except (asyncio.CancelledError, GeneratorExit):
            run.cancelled(deployment, started)
            raise
        finally:
            self.live.end(deployment.key)
            await upstream.aclose()
        run.succeeded(deployment, started, ttft)
        cost = deployment.price.cost_nanos(event.usage)
        yield StreamFinish(event, deployment, run.decision_or_raise(), tuple(run.attempts), cost)


class _Racer:
    """One attempt of a hedge race."""

    __slots__ = ("deployment", "hedged", "late", "started")

    def __init__(self, deployment: Deployment, hedged: bool) -> None:
        self.deployment = deployment
        # In a race: the hedge from its start, the first choice from when the hedge is sent.
        self.hedged = hedged
        self.started = time.monotonic()  # replaced by the attempt's own start
        self.late: LateAttempt | None = None  # set when left to finish after the answer


def _hedged(racer: _Racer | None) -> bool:
    return racer is not None and racer.hedged


def _as_provider_error(exc: BaseException, timeout_s: float) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, StopAsyncIteration):
        return ProviderError(ErrorClass.BAD_RESPONSE, "upstream stream ended without its terminal event")
    return ProviderError(ErrorClass.TIMEOUT, f"no answer within {timeout_s:.3g}s")
