"""Event ids seen recently in one partition: catches the publisher's own resends.

Two kinds of duplicates reach a consumer, and each has its own guard:
- redelivery of records we already counted (a crash before a commit, a rebalance): the same
  offsets come back. PartitionProcessor skips every offset below the one its state covers; that
  needs no memory at all.
- the publisher sending one event twice (at-least-once: a send that timed out on our side but
  reached the broker is spooled and replayed). The copy has a new offset, possibly minutes later,
  but the same event_id. Events are keyed by request id, so both copies are in one partition.

This index handles the second kind. It keeps ids in offset order and forgets the oldest once they
are older than `horizon_ms` (by record timestamp, i.e. send time: the gap between two sends of one
event is what matters) or once there are more than `max_ids`: memory is bounded, and a duplicate
is caught if it arrives within the horizon. Ids are not written to snapshots; after a restart the
index is rebuilt by re-reading the partition from `replay_from()` (see partition.py), so a restart
catches the same duplicates a running consumer would.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DedupeConfig:
    horizon_s: float = 900.0  # how long after the first copy a second copy is still recognised
    max_ids: int = 200_000  # per partition; ~100 bytes each


class DedupeIndex:
    __slots__ = ("_horizon_ms", "_ids", "_max_ids", "max_timestamp_ms")

    def __init__(self, config: DedupeConfig = DedupeConfig()) -> None:
        self._horizon_ms = int(config.horizon_s * 1000)
        self._max_ids = config.max_ids
        # event_id -> (offset, timestamp_ms), oldest offset first
        self._ids: OrderedDict[str, tuple[int, int]] = OrderedDict()
        # Checkpointed, so that eviction after a restart matches eviction without one.
        self.max_timestamp_ms = 0

    def add(self, event_id: str, offset: int, timestamp_ms: int) -> bool:
        """Remember the id; False when it was already seen (a duplicate)."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = (offset, timestamp_ms)
        self.max_timestamp_ms = max(self.max_timestamp_ms, timestamp_ms)
        self._evict()
        return True

    def replay_from(self) -> int | None:
        """Offset of the oldest id still remembered (None when empty): re-reading from there rebuilds us."""
        for offset, _ in self._ids.values():
            return offset
        return None

    def __len__(self) -> int:
        return len(self._ids)

    def _evict(self) -> None:
        oldest_kept = self.max_timestamp_ms - self._horizon_ms
        ids = self._ids
        while ids:
            _, (_, timestamp_ms) = next(iter(ids.items()))
            if len(ids) <= self._max_ids and timestamp_ms >= oldest_kept:
                return
            ids.popitem(last=False)
