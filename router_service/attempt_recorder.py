"""What happened in one request, recorded once: the only writer of live state on the request path.

A `RequestRecorder` is made per request. Everything the request does to live state goes through
it: breaker admission (`admit`), the in-flight count and each attempt's outcome (`start` returns an
`Attempt`, which ends with exactly one of `succeeded`, `failed`, `cancelled` or `abort`). Each
outcome is recorded in live state, kept in the request's attempt list and reported to the
observer as it happens; the request itself ends with exactly one `finished` or `ended_with`.

A hedge race's loser left to run on after its request was answered (`detach`) is the same
`Attempt`: its place in the attempt list is taken at once (as cancelled: the caller did not wait
for it), and its event is published in that place when it ends, with its real outcome. A loser
that did answer carries its unused usage and exact cost: the upstream billed it, and cost rollups
and budgets must see it even though no caller got the answer.
"""

from __future__ import annotations

from router_service.call import CallContext, Completion, RequestObserver, StreamFinish
from router_service.catalog import Deployment
from router_service.clock import Clock
from router_service.domain import AttemptOutcome, AttemptRecord, ChatRequest, RouteDecision, Usage
from router_service.errors import ErrorClass, ProviderError
from router_service.resilience.live_state import LiveState
from router_service.telemetry.metrics import LOOP_STALLED_TIMEOUTS


class RequestRecorder:
    """One request: its decision, attempts and failures, recorded and reported as they happen."""

    __slots__ = ("attempts", "clock", "closed", "ctx", "decision", "failures", "live", "observer", "request")

    def __init__(
        self,
        ctx: CallContext,
        request: ChatRequest,
        observer: RequestObserver,
        live: LiveState,
        clock: Clock,
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.observer = observer
        self.live = live
        self.clock = clock
        self.decision: RouteDecision | None = None
        self.attempts: list[AttemptRecord] = []
        self.failures: list[tuple[str, ProviderError]] = []
        self.closed = False

    # --- the decision ------------------------------------------------------------------------

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

    # --- attempts ----------------------------------------------------------------------------

    def admit(self, key: str) -> bool:
        """Whether `key`'s breaker lets an attempt go now; takes a probe slot if half-open."""
        return self.live.try_acquire(key, self.clock.monotonic())

    def start(self, d: Deployment, *, hedged: bool = False) -> Attempt:
        """An attempt is about to be sent to `d` (already admitted): it is in flight from now."""
        started = self.clock.monotonic()
        self.live.begin(d.key, started)
        return Attempt(self, d, started, hedged)

    def detach(self, attempt: Attempt) -> None:
        """A hedge loser runs on after the request is answered: cancelled as far as the caller's
        response is concerned, so that is what its place in the attempt list says now; its event
        waits for its real outcome (see the module docstring)."""
        record = _cancelled_record(attempt, self.clock.monotonic(), self.clock.time())
        self.attempts.append(record)
        attempt.late_index = len(self.attempts) - 1

    def attempt_ended(self, attempt: Attempt, record: AttemptRecord, failure: ProviderError | None) -> None:
        """`attempt` has its outcome (already in live state): no longer in flight, and reported."""
        attempt.ended = True
        self.live.end(attempt.deployment.key)
        upstream_model = attempt.deployment.upstream_model
        if attempt.late_index is not None:
            self.observer.on_attempt(self.ctx, attempt.late_index, record, upstream_model)
            return
        if failure is not None:
            self.failures.append((attempt.deployment.key, failure))
        self.attempts.append(record)
        self.observer.on_attempt(self.ctx, len(self.attempts) - 1, record, upstream_model)

    # --- the end -----------------------------------------------------------------------------

    def finished(self, outcome: Completion | StreamFinish) -> None:
        self.closed = True
        latency = self.clock.monotonic() - self.ctx.started
        self.observer.on_completion(self.ctx, self.request, outcome, latency)

    def ended_with(self, error: BaseException) -> None:
        # Exactly one terminal report per request: a consumer that stops iterating right after
        # StreamFinish must not turn a completed stream into an error.
        if self.closed:
            return
        self.closed = True
        latency = self.clock.monotonic() - self.ctx.started
        self.observer.on_error(self.ctx, error, len(self.attempts), latency)


class Attempt:
    """One upstream attempt in flight. `hedged` is read when it ends: the first choice of a race
    becomes hedged only once the hedge is sent."""

    __slots__ = ("_recorder", "deployment", "ended", "hedged", "late_index", "started")

    def __init__(self, recorder: RequestRecorder, d: Deployment, started: float, hedged: bool) -> None:
        self._recorder = recorder
        self.ended = False  # has its outcome (or was aborted)
        self.deployment = d
        self.started = started
        self.hedged = hedged
        self.late_index: int | None = None  # set by `RequestRecorder.detach`

    def succeeded(self, ttft: float | None = None, usage: Usage | None = None) -> None:
        """`usage` is reported with the attempt only for a detached loser's unused answer; a used
        answer's usage goes with the completion."""
        recorder, d = self._recorder, self.deployment
        now = recorder.clock.monotonic()
        recorder.live.record_success(d.key, now - self.started, ttft, now)
        unused = usage if self.late_index is not None else None
        record = _record(
            self,
            AttemptOutcome.SUCCESS,
            now,
            recorder.clock.time(),
            ttft=ttft,
            http_status=200,
            unused_usage=unused,
            unused_cost_nanos=d.price.cost_nanos(unused) if unused is not None else 0,
        )
        recorder.attempt_ended(self, record, None)

    def failed(self, error: ProviderError) -> None:
        recorder = self._recorder
        now = recorder.clock.monotonic()
        # A failure the router caused (a stalled loop) is recorded as nobody's, as a cancel is; its
        # event says so (AttemptEvent.router_stalled), so the fleet's health counts it the same way.
        health_class = error.error_class
        stalled = not error.blames_upstream
        if stalled:
            health_class = ErrorClass.CANCELLED
            LOOP_STALLED_TIMEOUTS.labels(self.deployment.provider).inc()
        opened = recorder.live.record_failure(self.deployment.key, health_class, now, error.retry_after_s)
        record = _record(
            self,
            AttemptOutcome.ERROR,
            now,
            recorder.clock.time(),
            error_class=error.error_class.value,
            http_status=error.status_code,
            retry_after_s=error.retry_after_s,
            breaker_cooldown_s=opened,
            router_stalled=stalled,
        )
        recorder.attempt_ended(self, record, error)

    def cancelled(self) -> None:
        """Nobody's failure (the caller left, a hedge lost, or shutdown cancelled a detached
        loser); recorded all the same, as it frees a half-open probe slot."""
        recorder = self._recorder
        now = recorder.clock.monotonic()
        recorder.live.record_failure(self.deployment.key, ErrorClass.CANCELLED, now)
        recorder.attempt_ended(self, _cancelled_record(self, now, recorder.clock.time()), None)

    def abort(self) -> None:
        """End without an outcome (an unexpected exception, which goes on as itself): only the
        in-flight count is put back. Does nothing after an outcome."""
        if not self.ended:
            self.ended = True
            self._recorder.live.end(self.deployment.key)


def _record(
    attempt: Attempt,
    outcome: AttemptOutcome,
    now: float,
    wall_now: float,
    *,
    ttft: float | None = None,
    error_class: str = "",
    http_status: int = 0,
    retry_after_s: float | None = None,
    unused_usage: Usage | None = None,
    unused_cost_nanos: int = 0,
    breaker_cooldown_s: float | None = None,
    router_stalled: bool = False,
) -> AttemptRecord:
    d = attempt.deployment
    latency = now - attempt.started
    return AttemptRecord(
        provider=d.provider,
        model=d.model,
        outcome=outcome,
        latency_s=latency,
        error_class=error_class,
        http_status=http_status,
        time_to_first_token_s=ttft,
        started_at_unix_s=wall_now - latency,
        retry_after_s=retry_after_s,
        hedged=attempt.hedged,
        unused_usage=unused_usage,
        unused_cost_nanos=unused_cost_nanos,
        breaker_cooldown_s=breaker_cooldown_s,
        router_stalled=router_stalled,
    )


def _cancelled_record(attempt: Attempt, now: float, wall_now: float) -> AttemptRecord:
    return _record(attempt, AttemptOutcome.CANCELLED, now, wall_now, error_class=ErrorClass.CANCELLED.value)
