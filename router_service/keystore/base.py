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

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
