"""The key store interface the authenticator and `routerctl keys` use."""

from __future__ import annotations

from typing import Protocol

from router_service.identity.records import KeyRecord


class KeyStore(Protocol):
    async def get(self, key_id: str) -> KeyRecord | None:
        """The current record for `key_id`, or None. Called on every authenticated call: fast, and
        returning the same object while the record is unchanged (the authenticator's cache
        depends on it)."""
        ...

    async def put(self, record: KeyRecord) -> None:
        """Create or replace one record (admin operations)."""
        ...

    async def list(self) -> list[KeyRecord]: ...

    def reload(self) -> bool:
        """Re-read what the store holds now (a config reload: SIGHUP), without waiting for its own
        refresh. Returns whether the keys in force changed, as far as the store can tell now."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class MemoryKeyStore:
    """Keys held in this process only: for a gate with client-certificate identities and no key
    store configured, and for programs that build their keys in code."""

    def __init__(self, records: list[KeyRecord] | None = None) -> None:
        self._records = {r.key_id: r for r in records or ()}

    async def get(self, key_id: str) -> KeyRecord | None:
        return self._records.get(key_id)

    async def put(self, record: KeyRecord) -> None:
        self._records[record.key_id] = record

    async def list(self) -> list[KeyRecord]:
        return list(self._records.values())

    def reload(self) -> bool:
        return False  # nothing outside this process to re-read

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass
