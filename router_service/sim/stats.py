"""Counters the sim keeps per model, served at GET /admin/stats.

Tests read them to prove router behaviour from the upstream's side: how many attempts reached a
model, which outcome each drew, and how many requests ended because the client went away (a
router that cancels upstream calls on deadline or hedge shows up here as disconnects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from router_service.sim.profile import Outcome


def _zero_outcomes() -> dict[str, int]:
    return {o.value: 0 for o in Outcome}


@dataclass(slots=True)
class ModelCounters:
    """`requests` counts accepted requests (400s are `SimStats.invalid_requests`); each ends as
    `completed` or as a `disconnect` (client gone, or the handler cancelled at shutdown)."""

    requests: int = 0
    in_flight: int = 0
    disconnects: int = 0
    completed: int = 0
    outcomes: dict[str, int] = field(default_factory=_zero_outcomes)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "disconnects": self.disconnects,
            "completed": self.completed,
            "outcomes": dict(self.outcomes),
        }

    def reset(self) -> None:
        """Zero the totals; in_flight is live state, not a total, so it stays."""
        self.requests = self.disconnects = self.completed = 0
        self.outcomes = _zero_outcomes()


class SimStats:
    def __init__(self) -> None:
        self._models: dict[str, ModelCounters] = {}
        self.invalid_requests = 0

    def model(self, name: str) -> ModelCounters:
        counters = self._models.get(name)
        if counters is None:
            counters = self._models[name] = ModelCounters()
        return counters

    def snapshot(self) -> dict[str, Any]:
        models = {name: c.snapshot() for name, c in sorted(self._models.items())}
        total = ModelCounters()
        for c in self._models.values():
            total.requests += c.requests
            total.in_flight += c.in_flight
            total.disconnects += c.disconnects
            total.completed += c.completed
            for key, n in c.outcomes.items():
                total.outcomes[key] += n
        return {"models": models, "total": total.snapshot(), "invalid_requests": self.invalid_requests}

    def reset(self) -> None:
        for c in self._models.values():
            c.reset()
        self.invalid_requests = 0
