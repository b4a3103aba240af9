"""Operators' key management over any KeyStore: what `routerctl keys` runs.

Secrets are generated here and returned once; only their hashes reach the store.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from router_service.identity import key_secret
from router_service.identity.model import Identity
from router_service.identity.records import Credential, KeyRecord
from router_service.keystore.base import KeyStore


class KeyAdminError(ValueError):
    pass


async def create_key(
    store: KeyStore, identity: Identity, *, expires_at: float | None = None
) -> tuple[KeyRecord, str]:
    """A new key for `identity` (a fresh key id if it has none). Returns (record, secret)."""
    if not identity.key_id:
        identity = dataclasses.replace(identity, key_id=key_secret.new_key_id())
    if await store.get(identity.key_id) is not None:
        raise KeyAdminError(f"key {identity.key_id} exists; rotate it instead")
    secret = key_secret.new_secret(identity.key_id)
    record = KeyRecord(identity, (Credential(key_secret.hash_secret(secret)),), expires_at=expires_at)
    await store.put(record)
    return record, secret


async def rotate_key(
    store: KeyStore, key_id: str, grace_s: float, clock: Callable[[], float] = time.time
) -> tuple[KeyRecord, str]:
    """A new secret for `key_id`; the old ones keep working for `grace_s`. Returns (record, secret)."""
    record = await _existing(store, key_id)
    secret = key_secret.new_secret(key_id)
    rotated = record.rotated(key_secret.hash_secret(secret), clock(), grace_s)
    await store.put(rotated)
    return rotated, secret


async def set_enabled(store: KeyStore, key_id: str, enabled: bool) -> KeyRecord:
    record = dataclasses.replace(await _existing(store, key_id), enabled=enabled)
    await store.put(record)
    return record


async def _existing(store: KeyStore, key_id: str) -> KeyRecord:
    record = await store.get(key_id)
    if record is None:
        raise KeyAdminError(f"no key {key_id}")
    return record
