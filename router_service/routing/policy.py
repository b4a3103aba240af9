"""Named routing policies: which models are candidates and which strategy orders them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    # Candidate catalog model names, in preference order; empty means every model in the catalog.
    models: tuple[str, ...] = ()
    # Registry key of the strategy that orders eligible candidates.
    strategy: str = "priority"
    # How many deployments the engine may try, first choice included.
    max_attempts: int = 3
