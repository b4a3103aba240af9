"""The store of cache entries: its interface, and the in-process LRU.

Two implementations with the same semantics (the tests run one suite against both):
`MemoryCacheStore` here, one router's entries, and `RedisCacheStore` (redis_store.py), shared by
every replica. The semantics:

- Values are opaque bytes (the codec's), under a key the facade gives (a hex hash).
- `set` replaces any value under the key; the value expires `ttl_s` after it was set.
- `get` answers None for a key never set, expired or evicted.
- A value over the store's `max_value_bytes` is not stored (`set` answers False), and a store
  failure raises `CacheUnavailableError`: the facade turns both into "no entry", never an error.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

# What one entry costs beyond its key and value bytes (the dict slot, the tuple, the bytes and str
# headers): counted, so a bound of N bytes holds about N bytes, not N bytes plus overhead.
ENTRY_OVERHEAD_BYTES = 200


class CacheUnavailableError(Exception):
    """The store could not be reached or did not answer in time."""


class CacheStore(Protocol):
    max_value_bytes: int

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        """False: the value is over `max_value_bytes` and was not stored (nothing changed)."""
        ...

    async def close(self) -> None: ...


class MemoryCacheStore:
    """An LRU bounded by bytes, with TTL on the given monotonic clock. No awaiting inside a method:
    each is atomic on the event loop."""

    def __init__(self, max_bytes: int, max_value_bytes: int, monotonic: Callable[[], float]) -> None:
        self.max_value_bytes = max_value_bytes
        self._max_bytes = max_bytes
        self._now = monotonic
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # oldest use first
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires_at, value = found
        if self._now() >= expires_at:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        cost = _cost(key, value)
        if len(value) > self.max_value_bytes or cost > self._max_bytes:
            return False
        self._drop(key)
        self._entries[key] = (self._now() + ttl_s, value)
        self._bytes += cost
        self._evict()
        return True

    def resize(self, max_bytes: int) -> None:
        """A new bound (a config reload): the least recently used entries go until it holds."""
        self._max_bytes = max_bytes
        self._evict()

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _evict(self) -> None:
        # Expired entries are not swept: an LRU reaches them soon enough, and a sweep would cost
        # every set a scan. Least recently used first out until the bound holds.
        entries = self._entries
        while self._bytes > self._max_bytes:
            key, (_, value) = entries.popitem(last=False)
            self._bytes -= _cost(key, value)

    def _drop(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self._bytes -= _cost(key, found[1])


def _cost(key: str, value: bytes) -> int:
    return len(key) + len(value) + ENTRY_OVERHEAD_BYTES
