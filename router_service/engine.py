"""Runs a routing decision: attempts, per-attempt timeouts inside the caller's deadline, fallbacks.

The only loop over targets. Policy (which targets, in what order) is `routing.planner.plan`; what
to do after a failure is decided by the error's class; live health is updated after every attempt;
telemetry is handed to a non-blocking sink. The engine knows nothing about gRPC or HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from router_service.catalog import Deployment
from router_service.domain import (
    AttemptOutcome,
    AttemptRecord,
    ChatRequest,
    ChatResult,
    RouteDecision,
    StreamDone,
    StreamEvent,
    TextDelta,
)
from router_service.errors import (
    AllAttemptsFailedError,
    DeadlineExceededError,
    ErrorClass,
    ProviderError,
    StreamInterruptedError,
    UnknownModelError,
    UpstreamRejectedError,
)
from router_service.providers.base import ProviderAdapter
from router_service.routing.planner import HealthView, plan
from router_service.settings import RuntimeConfig


class HealthRecorder(HealthView, Protocol):
    def record_success(self, key: str, latency_s: float, ttft_s: float | None, now: float) -> None: ...

    def record_failure(
        self, key: str, error_class: ErrorClass, now: float, retry_after_s: float | None = None
    ) -> None: ...


class NoHealth:
    """Health that never excludes anything (used until live state is configured)."""

    def unavailable_reason(self, key: str, now: float) -> str | None:
        return None

    def record_success(self, key: str, latency_s: float, ttft_s: float | None, now: float) -> None:
        pass

    def record_failure(
        self, key: str, error_class: ErrorClass, now: float, retry_after_s: float | None = None
    ) -> None:
        pass


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
class CallContext:
    """Per-call facts from the API layer."""

    request_id: str
    deadline: float  # time.monotonic() value after which the caller no longer waits
    started: float = 0.0  # time.monotonic() when the call arrived
    tags: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False


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


StreamItem = StreamStart | StreamEvent | StreamFinish


class Engine:
    def __init__(
        self,
        config: RuntimeConfig,
        adapters: Mapping[str, ProviderAdapter],
        health: HealthRecorder | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        self._config = config
        self._adapters = adapters
        self._health: HealthRecorder = health or NoHealth()
        self._observer: RequestObserver = observer or NullObserver()

    # --- decisions ---------------------------------------------------------------------------

    def route(self, request: ChatRequest) -> RouteDecision:
        policy_name = request.hints.policy or self._config.routing.default_policy
        policy = self._config.policies.get(policy_name)
        if policy is None:
            raise UnknownModelError("policy", policy_name)
        return plan(request, self._config.catalog, policy, self._health, time.monotonic())

    # --- unary --------------------------------------------------------------------------------

    async def complete(self, request: ChatRequest, ctx: CallContext) -> Completion:
        run = _Run(self, ctx, request)
        try:
            completion = await self._complete(request, run)
        except BaseException as exc:
            run.failed(exc)
            raise
        run.finished(completion)
        return completion

    async def _complete(self, request: ChatRequest, run: _Run) -> Completion:
        decision = run.decide()
        for key in decision.chain:
            deployment = self._config.catalog.by_key[key]
            timeout = self._attempt_timeout(run.ctx)
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    result = await self._adapters[deployment.provider].complete(
                        request, deployment.upstream_model
                    )
            except asyncio.CancelledError:
                run.attempt_cancelled(deployment, started)
                raise
            except (ProviderError, TimeoutError) as exc:
                self._after_failure(run, deployment, started, _as_provider_error(exc, timeout))
                continue
            run.attempt_succeeded(deployment, started, None)
            return Completion(
                result=result,
                deployment=deployment,
                decision=decision,
                attempts=tuple(run.attempts),
                cost_nanos=deployment.price.cost_nanos(result.usage),
            )
        raise AllAttemptsFailedError(run.failures)

    # --- streaming ----------------------------------------------------------------------------

    async def stream(self, request: ChatRequest, ctx: CallContext) -> AsyncGenerator[StreamItem, None]:
        """Yields StreamStart, then deltas, then StreamFinish. Falls back only before the first
        event is yielded; after that a failure raises StreamInterruptedError."""
        run = _Run(self, ctx, request)
        try:
            # aclosing: when our consumer stops early, the inner generators (and with them the
            # upstream HTTP response) are closed now, not whenever they are garbage-collected.
            async with contextlib.aclosing(self._stream(request, run)) as items:
                async for item in items:
                    if isinstance(item, StreamFinish):
                        run.finished(item)  # before yielding: the consumer may stop right after it
                    yield item
        except BaseException as exc:
            # GeneratorExit: the consumer stopped iterating (caller went away).
            run.failed(exc)
            raise

    async def _stream(self, request: ChatRequest, run: _Run) -> AsyncGenerator[StreamItem, None]:
        decision = run.decide()
        for key in decision.chain:
            deployment = self._config.catalog.by_key[key]
            upstream = self._adapters[deployment.provider].stream(request, deployment.upstream_model)
            started = time.monotonic()
            try:
                first = await self._first_event(upstream, run.ctx)
            except asyncio.CancelledError:
                run.attempt_cancelled(deployment, started)
                await upstream.aclose()
                raise
            except (ProviderError, TimeoutError) as exc:
                await upstream.aclose()
                timeout = self._config.routing.first_token_timeout_s
                self._after_failure(run, deployment, started, _as_provider_error(exc, timeout))
                continue
            async with contextlib.aclosing(self._relay(run, upstream, first, deployment, started)) as relay:
                async for item in relay:
                    yield item
            return
        raise AllAttemptsFailedError(run.failures)

    async def _first_event(
        self, upstream: AsyncGenerator[StreamEvent, None], ctx: CallContext
    ) -> StreamEvent:
        timeout = min(self._attempt_timeout(ctx), self._config.routing.first_token_timeout_s)
        async with asyncio.timeout(timeout):
            return await anext(upstream)

    async def _relay(
        self,
        run: _Run,
        upstream: AsyncGenerator[StreamEvent, None],
        first: StreamEvent,
        deployment: Deployment,
        started: float,
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
                event = await anext(upstream)
        except StopAsyncIteration:
            error = ProviderError(ErrorClass.BAD_RESPONSE, "adapter stream ended without StreamDone")
            run.attempt_failed(deployment, started, error)
            raise StreamInterruptedError(deployment.key, error, delivered) from None
        except ProviderError as error:
            run.attempt_failed(deployment, started, error)
            raise StreamInterruptedError(deployment.key, error, delivered) from error
        except (asyncio.CancelledError, GeneratorExit):
            run.attempt_cancelled(deployment, started)
            raise
        finally:
            await upstream.aclose()
        run.attempt_succeeded(deployment, started, ttft)
        cost = deployment.price.cost_nanos(event.usage)
        yield StreamFinish(event, deployment, run.decision_or_raise(), tuple(run.attempts), cost)

    # --- helpers ------------------------------------------------------------------------------

    def _attempt_timeout(self, ctx: CallContext) -> float:
        remaining = ctx.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError("the caller's deadline passed before the next attempt")
        return min(self._config.routing.attempt_timeout_s, remaining)

    def _after_failure(self, run: _Run, deployment: Deployment, started: float, error: ProviderError) -> None:
        """Record a failed attempt, then raise if no other target may be tried."""
        run.attempt_failed(deployment, started, error)
        if error.error_class.is_callers_fault:
            raise UpstreamRejectedError(deployment.key, error)
        if run.ctx.deadline - time.monotonic() <= 0:
            raise DeadlineExceededError(
                f"deadline exceeded after {deployment.key} failed ({error.error_class.value})"
            )


class _Run:
    """Book-keeping for one request: its decision, attempts and failures, reported as they happen."""

    __slots__ = ("_engine", "attempts", "closed", "ctx", "decision", "failures", "request")

    def __init__(self, engine: Engine, ctx: CallContext, request: ChatRequest) -> None:
        self._engine = engine
        self.ctx = ctx
        self.request = request
        self.decision: RouteDecision | None = None
        self.attempts: list[AttemptRecord] = []
        self.failures: list[tuple[str, ProviderError]] = []
        self.closed = False

    def decide(self) -> RouteDecision:
        self.decision = self._engine.route(self.request)
        self._engine._observer.on_decision(self.ctx, self.decision)
        return self.decision

    def decision_or_raise(self) -> RouteDecision:
        assert self.decision is not None, "attempts happen only after a decision"
        return self.decision

    def attempt_succeeded(self, d: Deployment, started: float, ttft: float | None) -> None:
        now = time.monotonic()
        self._engine._health.record_success(d.key, now - started, ttft, now)
        self._add(d, AttemptOutcome.SUCCESS, started, now, ttft=ttft, http_status=200)

    def attempt_failed(self, d: Deployment, started: float, error: ProviderError) -> None:
        now = time.monotonic()
        self._engine._health.record_failure(d.key, error.error_class, now, error.retry_after_s)
        self.failures.append((d.key, error))
        self._add(
            d,
            AttemptOutcome.ERROR,
            started,
            now,
            error_class=error.error_class.value,
            http_status=error.status_code,
            retry_after_s=error.retry_after_s,
        )

    def attempt_cancelled(self, d: Deployment, started: float) -> None:
        self._add(
            d, AttemptOutcome.CANCELLED, started, time.monotonic(), error_class=ErrorClass.CANCELLED.value
        )

    def _add(
        self,
        d: Deployment,
        outcome: AttemptOutcome,
        started: float,
        now: float,
        *,
        ttft: float | None = None,
        error_class: str = "",
        http_status: int = 0,
        retry_after_s: float | None = None,
    ) -> None:
        latency = now - started
        record = AttemptRecord(
            provider=d.provider,
            model=d.model,
            outcome=outcome,
            latency_s=latency,
            error_class=error_class,
            http_status=http_status,
            time_to_first_token_s=ttft,
            started_at_unix_s=time.time() - latency,
            retry_after_s=retry_after_s,
        )
        self.attempts.append(record)
        self._engine._observer.on_attempt(self.ctx, len(self.attempts) - 1, record, d.upstream_model)

    def finished(self, outcome: Completion | StreamFinish) -> None:
        self.closed = True
        latency = time.monotonic() - self.ctx.started
        self._engine._observer.on_completion(self.ctx, self.request, outcome, latency)

    def failed(self, error: BaseException) -> None:
        # Exactly one terminal report per request: a consumer that stops iterating right after
        # StreamFinish must not turn a completed stream into an error.
        if self.closed:
            return
        self.closed = True
        latency = time.monotonic() - self.ctx.started
        self._engine._observer.on_error(self.ctx, error, len(self.attempts), latency)


def _as_provider_error(exc: ProviderError | TimeoutError, timeout_s: float) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    return ProviderError(ErrorClass.TIMEOUT, f"no answer within the attempt timeout of {timeout_s:.3g}s")
