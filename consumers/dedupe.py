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
is caught if it arrives within the horizon.

After a restart the index must hold what it held before, or a restart would miss duplicates a
running consumer catches. Two ways (partition.py picks): re-read the partition from
`replay_from()`, which at 1,000 events/s is up to 15 minutes of records; or load the entries
the dedupe log (dedupe_log.py) wrote at each flush, and re-read nothing. With a log, every entry
added is also queued in `unlogged` for it.

Ids are kept as 64-bit fingerprints (blake2b), not text: a third of the memory, and 24 bytes an
entry in the log. Two different ids of one partition share a fingerprint with probability
~n/2^64 per event (n <= max_ids): about 1e-14 at 200,000 ids, far below any other loss.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import blake2b

# (fingerprint, offset, timestamp_ms): one id of the index, as the dedupe log stores it.
Entry = tuple[int, int, int]


def fingerprint(event_id: str) -> int:
    return int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "little")


@dataclass(frozen=True, slots=True)
class DedupeConfig:
    horizon_s: float = 900.0  # how long after the first copy a second copy is still recognised
    max_ids: int = 200_000  # per partition; ~100 bytes each


class DedupeIndex:
    __slots__ = ("_horizon_ms", "_ids", "_logged", "_max_ids", "max_timestamp_ms", "unlogged")

    def __init__(self, config: DedupeConfig = DedupeConfig(), *, logged: bool = False) -> None:
        self._horizon_ms = int(config.horizon_s * 1000)
        self._max_ids = config.max_ids
        # fingerprint -> (offset, timestamp_ms), oldest offset first
        self._ids: OrderedDict[int, tuple[int, int]] = OrderedDict()
        # Checkpointed, so that eviction after a restart matches eviction without one.
        self.max_timestamp_ms = 0
        self._logged = logged
        self.unlogged: list[Entry] = []  # added since the dedupe log last took them (when logged)

    def add(self, event_id: str, offset: int, timestamp_ms: int) -> bool:
        """Remember the id; False when another record had it (a duplicate).

        The same record read again (same offset: a replay over ids loaded from the log) is not
        a duplicate of itself.
        """
        key = fingerprint(event_id)
        seen = self._ids.get(key)
        if seen is not None:
            return seen[0] == offset
        self._ids[key] = (offset, timestamp_ms)
        if self._logged:
            self.unlogged.append((key, offset, timestamp_ms))
        self.max_timestamp_ms = max(self.max_timestamp_ms, timestamp_ms)
        self._evict()
        return True

    def load(self, entries: Iterable[Entry], max_timestamp_ms: int) -> None:
        """Restore entries the log wrote (in offset order); they are logged already."""
        ids = self._ids
        for key, offset, timestamp_ms in entries:
            if key not in ids:
                ids[key] = (offset, timestamp_ms)
        self.max_timestamp_ms = max(self.max_timestamp_ms, max_timestamp_ms)
        self._evict()

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
