"""Cooldown and circuit breaking for one deployment, as a pure state machine (time passed in).

    CLOSED --(more than allowed_fails health failures within fail_window_s,
              or one failure of a class whose rule says cooldown)--> OPEN
    OPEN --(cooldown over)--> HALF_OPEN
    HALF_OPEN --(probe_successes probes succeed)--> RAMPING --(ramp_s elapsed)--> CLOSED
    HALF_OPEN --(a probe fails)--> OPEN, for longer
    RAMPING --(allowed_fails exceeded again)--> OPEN, for longer

The cooldown length is the error rule's own (`auth`: minutes), else the provider's Retry-After
(capped), else `cooldown_s`, multiplied by `cooldown_multiplier` for each re-open that happens
before the deployment fully recovers, so a provider that keeps failing is probed less and less.

HALF_OPEN admits at most `half_open_probes` requests at a time (`try_acquire`). RAMPING is slow
start: the deployment is available again but `ramp_fraction` grows linearly from
`ramp_start_fraction` to 1 over `ramp_s`, and the planner sends it only that share of the traffic
it would otherwise win, so a recovered provider is not hit by a thundering herd.

`failures` is a deque of the last `allowed_fails + 1` failure times: "more than allowed_fails
within the window" is exactly "the oldest of those is within the window", an O(1) check in bounded
memory.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

from router_service.errors import ErrorClass
from router_service.resilience.error_policy import ErrorRule


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    RAMPING = "ramping"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    # LiteLLM semantics: this many health failures within fail_window_s are tolerated; one more
    # opens the breaker for cooldown_s.
    allowed_fails: int = 3
    fail_window_s: float = 60.0
    # Also require this share of the window's requests to have failed (0 disables the check).
    # Keeps a busy deployment with a tiny error rate from tripping on allowed_fails alone.
    min_failure_rate: float = 0.0
    cooldown_s: float = 30.0
    cooldown_multiplier: float = 2.0
    max_cooldown_s: float = 600.0
    max_retry_after_s: float = 300.0
    half_open_probes: int = 1
    probe_successes: int = 1
    # A probe slot held this long is presumed lost (the engine never reported) and is freed.
    probe_timeout_s: float = 60.0
    ramp_s: float = 30.0
    ramp_start_fraction: float = 0.1

    def __post_init__(self) -> None:
        if self.allowed_fails < 0 or self.half_open_probes < 1 or self.probe_successes < 1:
            raise ValueError("allowed_fails must be >= 0, half_open_probes and probe_successes >= 1")
        if not 0.0 < self.ramp_start_fraction <= 1.0:
            raise ValueError("ramp_start_fraction must be in (0, 1]")
        if min(self.fail_window_s, self.cooldown_s, self.max_cooldown_s, self.ramp_s) < 0:
            raise ValueError("durations must be >= 0")


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    state: BreakerState
    reason: str  # why it last opened ("" if never)
    open_remaining_s: float  # > 0 only while OPEN
    consecutive_opens: int
    probes_in_flight: int
    ramp_fraction: float


class CircuitBreaker:
    __slots__ = (
        "_config",
        "_failures",
        "_open_until",
        "_opens",
        "_probe_successes",
        "_probes",
        "_ramp_started",
        "_reason",
        "_reason_cache",
        "_state",
    )

    def __init__(self, config: BreakerConfig) -> None:
        self._config = config
        self._state = BreakerState.CLOSED
        self._failures: deque[float] = deque(maxlen=config.allowed_fails + 1)
        self._open_until = 0.0
        self._reason = ""
        self._reason_cache: tuple[int, str] = (-1, "")
        self._opens = 0  # consecutive opens without a full recovery; scales the cooldown
        self._probes: list[float] = []  # acquisition times of probe slots in use
        self._probe_successes = 0
        self._ramp_started = 0.0

    # --- reads -------------------------------------------------------------------------------

    def state(self, now: float) -> BreakerState:
        self._advance(now)
        return self._state

    @property
    def is_closed(self) -> bool:
        """CLOSED as of the last call that was given a time (no time passes here)."""
        return self._state is BreakerState.CLOSED

    def unavailable_reason(self, now: float) -> str | None:
        self._advance(now)  # what state(now) does: routing asks on every request, so one call less
        state = self._state
        if state is BreakerState.OPEN:
            return self._open_reason(now)
        if state is BreakerState.HALF_OPEN and not self._probe_slot_free(now):
            return f"circuit half-open: {len(self._probes)}/{self._config.half_open_probes} probes in flight"
        return None

    def _open_reason(self, now: float) -> str:
        # Routing asks on every request; formatting is the costly part, so the text is reused
        # while the remaining time rounds to the same tenth of a second.
        tenths = math.ceil((self._open_until - now) * 10)
        if self._reason_cache[0] != tenths:
            text = f"circuit open: cooling down {tenths / 10:.1f}s more after {self._reason}"
            self._reason_cache = (tenths, text)
        return self._reason_cache[1]

    def ramp_fraction(self, now: float) -> float:
        """Share of its traffic the deployment may take: 1 except during slow start."""
        self._advance(now)  # what state(now) does, one call less (routing asks on every request)
        if self._state is not BreakerState.RAMPING:
            return 1.0
        start = self._config.ramp_start_fraction
        return start + (1.0 - start) * (now - self._ramp_started) / self._config.ramp_s

    def snapshot(self, now: float) -> BreakerSnapshot:
        state = self.state(now)
        return BreakerSnapshot(
            state=state,
            reason=self._reason,
            open_remaining_s=max(0.0, self._open_until - now) if state is BreakerState.OPEN else 0.0,
            consecutive_opens=self._opens,
            probes_in_flight=len(self._probes),
            ramp_fraction=self.ramp_fraction(now),
        )

    # --- admission and outcomes --------------------------------------------------------------

    def try_acquire(self, now: float) -> bool:
        """May a request be sent now? While half-open this takes one of the probe slots."""
        state = self.state(now)
        if state is BreakerState.OPEN:
            return False
        if state is BreakerState.HALF_OPEN:
            if not self._probe_slot_free(now):
                return False
            self._probes.append(now)
        return True

    def on_success(self, now: float) -> None:
        if self.state(now) is not BreakerState.HALF_OPEN:
            return
        self._release_probe()
        self._probe_successes += 1
        if self._probe_successes >= self._config.probe_successes:
            self._start_ramp(now)

    def on_failure(
        self,
        now: float,
        error_class: ErrorClass,
        rule: ErrorRule,
        retry_after_s: float | None = None,
        failure_rate: float = 1.0,
    ) -> float | None:
        """Account one failed attempt. `failure_rate` is the window's health-failure share.

        Returns the cooldown in seconds when this failure opened the breaker, else None (it was
        open already, or stays closed): what the attempt's event tells the fleet."""
        state = self.state(now)
        if not (rule.counts_against_health or rule.cooldown):
            if state is BreakerState.HALF_OPEN:
                self._release_probe()  # the probe proved nothing either way
            return None
        if state is BreakerState.OPEN:
            if rule.cooldown:  # e.g. a later 429 with a longer Retry-After
                self._open_until = max(self._open_until, now + self._cooldown(rule, retry_after_s))
            return None
        if rule.cooldown:
            return self._open(now, rule, retry_after_s, _describe(error_class, retry_after_s))
        if state is BreakerState.HALF_OPEN:
            return self._open(now, rule, retry_after_s, f"probe failed ({error_class.value})")
        if self._too_many_failures(now, failure_rate):
            window = self._config.fail_window_s
            return self._open(now, rule, retry_after_s, f"{len(self._failures)} failures in {window:g}s")
        return None

    # --- transitions -------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        if self._state is BreakerState.OPEN and now >= self._open_until:
            self._state = BreakerState.HALF_OPEN
            self._probes.clear()
            self._probe_successes = 0
        elif self._state is BreakerState.RAMPING and now >= self._ramp_started + self._config.ramp_s:
            self._state = BreakerState.CLOSED
            self._opens = 0

    def _open(self, now: float, rule: ErrorRule, retry_after_s: float | None, reason: str) -> float:
        cooldown = self._cooldown(rule, retry_after_s)
        self._open_until = now + cooldown
        self._opens += 1
        self._state = BreakerState.OPEN
        self._reason = reason
        self._reason_cache = (-1, "")
        self._failures.clear()
        self._probes.clear()
        return cooldown

    def _start_ramp(self, now: float) -> None:
        self._probes.clear()
        self._failures.clear()
        if self._config.ramp_s <= 0:
            self._state = BreakerState.CLOSED
            self._opens = 0
            return
        self._state = BreakerState.RAMPING
        self._ramp_started = now

    def _cooldown(self, rule: ErrorRule, retry_after_s: float | None) -> float:
        config = self._config
        if rule.cooldown_s is not None:
            return rule.cooldown_s
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), config.max_retry_after_s)
        scaled = config.cooldown_s * config.cooldown_multiplier**self._opens
        return min(scaled, config.max_cooldown_s)

    def _too_many_failures(self, now: float, failure_rate: float) -> bool:
        failures = self._failures
        failures.append(now)
        if len(failures) <= self._config.allowed_fails:
            return False
        if now - failures[0] > self._config.fail_window_s:
            return False
        return failure_rate >= self._config.min_failure_rate

    def _probe_slot_free(self, now: float) -> bool:
        deadline = now - self._config.probe_timeout_s
        while self._probes and self._probes[0] <= deadline:
            self._probes.pop(0)
        return len(self._probes) < self._config.half_open_probes

    def _release_probe(self) -> None:
        if self._probes:
            self._probes.pop(0)


def _describe(error_class: ErrorClass, retry_after_s: float | None) -> str:
    if retry_after_s is None:
        return error_class.value
    return f"{error_class.value} (retry-after {retry_after_s:g}s)"
