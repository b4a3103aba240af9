"""The circuit breaker against a reference model, driven by hypothesis through random interleavings
of time steps, admissions and outcomes (health failures, 429s with Retry-After, neutral failures,
successes).

The model is the contract written out plainly, with the breaker's own config: CLOSED opens on the
(allowed_fails + 1)-th health failure within fail_window_s or on one 429; OPEN refuses everything
until exactly its cooldown has passed (a later 429 can only extend it); HALF_OPEN admits exactly
half_open_probes requests at a time, moves to RAMPING only on its probe_successes-th success, and
reopens on the first health failure; a neutral failure frees a probe slot and changes nothing else;
RAMPING closes after ramp_s. Every step compares state, admission and probe count with the model,
so a half-open breaker that admitted one probe too many, closed after a failure, or left OPEN a
moment early fails here (the cooldown multiplier is 1 so that each cooldown is exact)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from router_service.errors import ErrorClass
from router_service.resilience.breaker import BreakerConfig, BreakerState, CircuitBreaker
from router_service.resilience.error_policy import DEFAULT_ERROR_POLICY

CONFIG = BreakerConfig(
    allowed_fails=2,
    fail_window_s=10.0,
    cooldown_s=5.0,
    cooldown_multiplier=1.0,
    max_cooldown_s=5.0,
    max_retry_after_s=8.0,
    half_open_probes=2,
    probe_successes=2,
    probe_timeout_s=1e9,  # lost probes are a separate (unit-tested) rule; here every probe reports
    ramp_s=4.0,
    ramp_start_fraction=0.25,
)

steps = st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0, 5.0, 7.5, 11.0])


class Model:
    """What the breaker must do, without its bookkeeping tricks (no deque, no cached reasons)."""

    def __init__(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures: list[float] = []  # health failures since the last open or recovery
        self.open_until = 0.0
        self.probes = 0
        self.successes = 0
        self.ramp_started = 0.0

    def advance(self, now: float) -> None:
        if self.state is BreakerState.OPEN and now >= self.open_until:
            self.state, self.probes, self.successes = BreakerState.HALF_OPEN, 0, 0
        elif self.state is BreakerState.RAMPING and now >= self.ramp_started + CONFIG.ramp_s:
            self.state = BreakerState.CLOSED

    def admit(self) -> bool:
        if self.state is BreakerState.OPEN:
            return False
        if self.state is BreakerState.HALF_OPEN:
            if self.probes >= CONFIG.half_open_probes:
                return False
            self.probes += 1
        return True

    def open(self, now: float, cooldown_s: float) -> None:
        self.state, self.open_until = BreakerState.OPEN, now + cooldown_s
        self.failures, self.probes = [], 0

    def success(self, now: float) -> None:
        if self.state is not BreakerState.HALF_OPEN:
            return
        self.probes = max(0, self.probes - 1)
        self.successes += 1
        if self.successes >= CONFIG.probe_successes:
            self.state, self.ramp_started, self.failures, self.probes = BreakerState.RAMPING, now, [], 0

    def health_failure(self, now: float) -> None:
        if self.state is BreakerState.OPEN:
            return
        if self.state is BreakerState.HALF_OPEN:
            self.open(now, CONFIG.cooldown_s)
            return
        self.failures.append(now)
        recent = self.failures[-(CONFIG.allowed_fails + 1) :]
        if len(recent) > CONFIG.allowed_fails and now - recent[0] <= CONFIG.fail_window_s:
            self.open(now, CONFIG.cooldown_s)

    def rate_limited(self, now: float, retry_after_s: float) -> None:
        cooldown = min(retry_after_s, CONFIG.max_retry_after_s)
        if self.state is BreakerState.OPEN:
            self.open_until = max(self.open_until, now + cooldown)
        else:
            self.open(now, cooldown)

    def neutral_failure(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self.probes = max(0, self.probes - 1)


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.breaker = CircuitBreaker(CONFIG)
        self.model = Model()
        self.now = 0.0

    def _fail(self, error: ErrorClass, retry_after_s: float | None = None) -> None:
        rule_ = DEFAULT_ERROR_POLICY.rule(error)
        self.breaker.on_failure(self.now, error, rule_, retry_after_s=retry_after_s)

    @rule(step=steps)
    def wait(self, step: float) -> None:
        self.now += step
        self.model.advance(self.now)

    @rule()
    def acquire(self) -> None:
        assert self.breaker.try_acquire(self.now) == self.model.admit()

    @rule()
    def succeed(self) -> None:
        self.breaker.on_success(self.now)
        self.model.success(self.now)

    @rule()
    def fail(self) -> None:
        self._fail(ErrorClass.TIMEOUT)
        self.model.health_failure(self.now)

    @rule(retry_after_s=st.sampled_from([0.5, 3.0, 6.0, 20.0]))
    def rate_limited(self, retry_after_s: float) -> None:
        self._fail(ErrorClass.RATE_LIMITED, retry_after_s)
        self.model.rate_limited(self.now, retry_after_s)

    @rule()
    def neutral(self) -> None:
        self._fail(ErrorClass.INVALID_REQUEST)
        self.model.neutral_failure()

    @precondition(lambda self: self.model.state is BreakerState.OPEN)
    @rule()
    def wait_until_just_before_the_cooldown_ends(self) -> None:
        # Lands on the last instant before the cooldown ends: still OPEN, still refusing.
        self.now = max(self.now, self.model.open_until - 1e-6)
        self.model.advance(self.now)
        assert self.model.state is BreakerState.OPEN
        assert not self.breaker.try_acquire(self.now)

    @invariant()
    def matches_the_model(self) -> None:
        snapshot = self.breaker.snapshot(self.now)
        assert snapshot.state is self.model.state
        assert snapshot.probes_in_flight == self.model.probes <= CONFIG.half_open_probes
        if self.model.state is BreakerState.OPEN:
            assert snapshot.open_remaining_s == self.model.open_until - self.now > 0
        assert (self.breaker.unavailable_reason(self.now) is None) == (
            self.model.state in (BreakerState.CLOSED, BreakerState.RAMPING)
            or (self.model.state is BreakerState.HALF_OPEN and self.model.probes < CONFIG.half_open_probes)
        )
        if self.model.state is BreakerState.RAMPING:
            start = CONFIG.ramp_start_fraction
            expected = start + (1 - start) * (self.now - self.model.ramp_started) / CONFIG.ramp_s
            assert abs(snapshot.ramp_fraction - expected) < 1e-9
        else:
            assert snapshot.ramp_fraction == 1.0


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
test_breaker_matches_its_model = BreakerMachine.TestCase
