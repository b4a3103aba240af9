"""Which replayed records a restored dimension has already counted.

A flush writes one snapshot record per changed dimension, then the partition's checkpoint
record; a crash between the two leaves some dimensions newer than the checkpoint. Each dimension
record carries the input offset its state covers, so after a restore, replaying from the
checkpoint adds a record to a dimension only if the record is at or past that dimension's own
offset. Without this, the dimensions written by the interrupted flush would count the replayed
records twice.
"""

from __future__ import annotations


class RestoreGate:
    __slots__ = ("_covered", "_highest")

    def __init__(self) -> None:
        self._covered: dict[str, int] = {}
        self._highest = -1

    def cover(self, key: str, offset: int) -> None:
        """The dimension's restored state already counts every record below `offset`."""
        self._covered[key] = offset
        self._highest = max(self._highest, offset)

    def admits(self, key: str, offset: int) -> bool:
        if offset >= self._highest:
            # Past every restored dimension (offsets only grow): the gate is done, free it.
            self._covered.clear()
            return True
        return offset >= self._covered.get(key, -1)
