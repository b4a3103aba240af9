"""What a deployment is doing right now: failures since its last success, open breakers (pure).

The window score (health_score.py) answers "how has it done over minutes"; it is diluted by the
successes before an outage and moves only as far as the routers let failures through: a provider
answering 500 to everything for 60 s, seen by one router whose breaker stopped after 7 attempts,
still scored 0.954 fleet-wide (issue 19, item 3). This is the other half, "is it failing now":

- `failures_s`: event times of the provider failures after the newest success, newest
  `MAX_FAILURES` kept. Any success clears them: the deployment answers again.
- `breakers`: per router instance, the newest report of a circuit breaker that router opened on
  the deployment (AttemptEvent.breaker_cooldown_ms on the attempt that opened it): when, and
  until when it stays open. A success after the report clears it too (the provider answered
  someone, so the breaker will half-open, probe and close); one whose cooldown is over counts no
  more.

Both merge exactly across input partitions (a deployment's attempts spread over all of them): the
newest success wins, and only what happened after it is kept. Times are event times, unix seconds.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from router_contract.windows import parse_rfc3339, rfc3339

# More failures than this in a row say nothing more: the score is already at its floor.
MAX_FAILURES = 32
# Routers reporting open breakers kept per deployment (the newest reports).
MAX_BREAKERS = 16


@dataclass(frozen=True, slots=True)
class BreakerReport:
    router: str  # the router instance that opened it ("<hostname>-<pid>")
    opened_s: float
    until_s: float

    def to_json(self) -> dict[str, Any]:
        return {"router": self.router, "opened": rfc3339(self.opened_s), "until": rfc3339(self.until_s)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BreakerReport:
        return cls(str(data["router"]), parse_rfc3339(data["opened"]), parse_rfc3339(data["until"]))


class Recent:
    __slots__ = ("breakers", "failures_s", "last_success_s")

    def __init__(self) -> None:
        self.last_success_s: float | None = None
        self.failures_s: list[float] = []  # sorted, all after last_success_s
        self.breakers: dict[str, BreakerReport] = {}  # by router; all opened after last_success_s

    # --- building -------------------------------------------------------------------------------

    def success(self, time_s: float) -> None:
        if self.last_success_s is not None and time_s <= self.last_success_s:
            return  # an older success (a late event): what came after the newest still stands
        self.last_success_s = time_s
        self._forget_until(time_s)

    def failure(self, time_s: float) -> None:
        if self._after_success(time_s):
            bisect.insort(self.failures_s, time_s)
            del self.failures_s[:-MAX_FAILURES]

    def breaker_opened(self, router: str, time_s: float, cooldown_s: float) -> None:
        self._report(BreakerReport(router, time_s, time_s + max(0.0, cooldown_s)))

    def merge(self, other: Recent) -> None:
        if other.last_success_s is not None:
            self.success(other.last_success_s)
        for time_s in other.failures_s:
            self.failure(time_s)
        for report in other.breakers.values():
            self._report(report)

    def prune(self, oldest_s: float) -> None:
        """Forget failures before `oldest_s` and breakers whose cooldown ended before it."""
        self.failures_s = self.failures_s[bisect.bisect_left(self.failures_s, oldest_s) :]
        self.breakers = {r: b for r, b in self.breakers.items() if b.until_s >= oldest_s}

    # --- reading --------------------------------------------------------------------------------

    @property
    def streak(self) -> int:
        """Provider failures in a row, up to now (capped at MAX_FAILURES)."""
        return len(self.failures_s)

    def open_breakers(self, now_s: float) -> list[str]:
        """The routers whose breaker on this deployment is open at `now_s`, by name."""
        return sorted(r for r, b in self.breakers.items() if b.until_s > now_s)

    def is_empty(self) -> bool:
        return not self.failures_s and not self.breakers

    def to_json(self) -> dict[str, Any]:
        return {
            "last_success": None if self.last_success_s is None else rfc3339(self.last_success_s),
            "failures": [rfc3339(t) for t in self.failures_s],
            "breakers": [b.to_json() for _, b in sorted(self.breakers.items())],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Recent:
        """`data` None: a record written before this field (nothing known of now)."""
        recent = cls()
        if data is None:
            return recent
        if data.get("last_success") is not None:
            recent.success(parse_rfc3339(data["last_success"]))
        for text in data.get("failures", ()):
            recent.failure(parse_rfc3339(text))
        for report in data.get("breakers", ()):
            recent._report(BreakerReport.from_json(report))
        return recent

    # --- internals ------------------------------------------------------------------------------

    def _after_success(self, time_s: float) -> bool:
        return self.last_success_s is None or time_s > self.last_success_s

    def _forget_until(self, time_s: float) -> None:
        self.failures_s = self.failures_s[bisect.bisect_right(self.failures_s, time_s) :]
        self.breakers = {r: b for r, b in self.breakers.items() if b.opened_s > time_s}

    def _report(self, report: BreakerReport) -> None:
        if not self._after_success(report.opened_s):
            return
        known = self.breakers.get(report.router)
        if known is not None and known.opened_s >= report.opened_s:
            return  # the router's newer report stands
        self.breakers[report.router] = report
        if len(self.breakers) > MAX_BREAKERS:
            oldest = min(self.breakers.values(), key=lambda b: (b.opened_s, b.router))
            del self.breakers[oldest.router]
