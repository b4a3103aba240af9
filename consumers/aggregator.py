"""What the shared runner needs from a job's aggregator: the state of one input partition.

An aggregator is pure: no I/O, no clock (time comes in as arguments), no randomness. Its state
is split by input partition because a partition is the unit a consumer group moves between
instances; each snapshot record a job publishes describes one dimension of one input partition,
and readers merge partitions (sums, merged sketches). The runner owns offsets, deduplication and
I/O; see partition.py for how the two fit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from consumers.events import Event
from router_contract.snapshot_records import JsonDict

__all__ = ["Aggregator", "DimensionRecord", "JsonDict"]


@dataclass(frozen=True, slots=True)
class DimensionRecord:
    """The current state of one dimension, or None when it expired (a tombstone for the key)."""

    key: str  # unique within the job, stable, readable: "team=search", "openai/gpt-4o", ...
    value: JsonDict | None


class Aggregator(Protocol):
    def apply(self, event: Event, offset: int) -> bool | str:
        """Count a new event: True; False when it was dropped as too late for any window we keep,
        or the reason it was dropped (one of consumers.metrics.DROP_REASONS)."""
        ...

    def index(self, event: Event, offset: int) -> None:
        """Replay of an already counted event after a restore: rebuild lookup state only."""
        ...

    def index_start(self) -> int | None:
        """Lowest offset the lookup state still needs re-read after a restart (None: none)."""
        ...

    def restore(self, key: str, value: JsonDict, covered_offset: int) -> None:
        """Load one dimension from its snapshot; it already counts every record below covered_offset."""
        ...

    def meta(self) -> JsonDict:
        """Small partition-wide state (e.g. the event-time watermark), saved in the checkpoint."""
        ...

    def restore_meta(self, meta: JsonDict) -> None: ...

    def changes(self, now_s: float) -> list[DimensionRecord]:
        """Dimensions changed (or expired) since the last call; they count as flushed from now on."""
        ...

    def mark_dirty(self, keys: Iterable[str]) -> None:
        """Undo `changes` for these keys: their publication failed and must be retried."""
        ...
