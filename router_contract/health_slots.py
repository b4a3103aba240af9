"""One time slot of one provider/model's attempts: counts by outcome and class, latency sketches.

Slots are the unit of the rolling window, and they merge exactly (counts add, sketches merge), so
a reader can combine the same slot from every input partition.
"""

from __future__ import annotations

from typing import Any, Protocol

from router_contract.sketch import LogHistogram
from router_contract.windows import parse_rfc3339, rfc3339


class AttemptOutcome(Protocol):
    """What `Slot.add` reads of an attempt (consumers.events.Attempt has it)."""

    @property
    def outcome(self) -> str: ...  # "success" | "error" | "cancelled" | "unspecified"
    @property
    def error_class(self) -> str: ...
    @property
    def latency_ms(self) -> int: ...
    @property
    def ttft_ms(self) -> int | None: ...


class Slot:
    __slots__ = ("attempts", "cancelled", "errors", "latency_ms", "successes", "ttft_ms")

    def __init__(self, relative_accuracy: float) -> None:
        self.attempts = 0
        self.successes = 0
        self.cancelled = 0
        self.errors: dict[str, int] = {}  # error class -> attempts that failed with it
        self.latency_ms = LogHistogram(relative_accuracy)  # successful attempts only
        self.ttft_ms = LogHistogram(relative_accuracy)

    def add(self, attempt: AttemptOutcome) -> None:
        self.attempts += 1
        if attempt.outcome == "success":
            self.successes += 1
            # Failures are left out: a timeout's latency is the timeout, not the provider's speed.
            self.latency_ms.add(attempt.latency_ms)
        elif attempt.outcome == "cancelled":
            self.cancelled += 1  # a lost hedge or a caller gone: says nothing about the provider
        else:
            self.errors[attempt.error_class] = self.errors.get(attempt.error_class, 0) + 1
        if attempt.ttft_ms is not None:
            self.ttft_ms.add(attempt.ttft_ms)

    def merge(self, other: Slot) -> None:
        self.attempts += other.attempts
        self.successes += other.successes
        self.cancelled += other.cancelled
        for error_class, count in other.errors.items():
            self.errors[error_class] = self.errors.get(error_class, 0) + count
        self.latency_ms.merge(other.latency_ms)
        self.ttft_ms.merge(other.ttft_ms)

    def to_json(self, start_s: int) -> dict[str, Any]:
        return {
            "start": rfc3339(start_s),
            "attempts": self.attempts,
            "successes": self.successes,
            "cancelled": self.cancelled,
            "errors": dict(sorted(self.errors.items())),
            "latency_ms": self.latency_ms.to_json(),
            "ttft_ms": self.ttft_ms.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> tuple[int, Slot]:
        latency = LogHistogram.from_json(data["latency_ms"])
        slot = cls(latency.relative_accuracy)
        slot.attempts = int(data["attempts"])
        slot.successes = int(data["successes"])
        slot.cancelled = int(data["cancelled"])
        slot.errors = {str(name): int(count) for name, count in data["errors"].items()}
        slot.latency_ms = latency
        slot.ttft_ms = LogHistogram.from_json(data["ttft_ms"])
        return int(parse_rfc3339(data["start"])), slot
