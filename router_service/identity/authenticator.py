"""Turns a presented secret into an Identity: parse, look up the key id, verify, check validity.

Verification hashes once per (secret, stored record): later calls with the same secret find it in
a bounded map keyed by the secret's SHA-256 (the secret itself is never kept), as long as the store
returns the same record object. A store that reloads, disables or rotates a key returns a new
record, so the next call verifies again and sees the change.

Every failure says the same thing ("invalid API key") whether the key id exists or not, so a
caller learns nothing about other keys; a key whose secret verified but that is disabled or
expired says so, since only its holder can see that.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from router_service.errors import UnauthenticatedError
from router_service.identity.key_secret import key_id_of, verify_secret
from router_service.identity.model import Identity
from router_service.identity.records import Credential, KeyRecord

KeyLookup = Callable[[str], Awaitable[KeyRecord | None]]

INVALID = "invalid API key"


class Authenticator:
    def __init__(self, lookup: KeyLookup, clock: Callable[[], float], *, cache_size: int = 10_000) -> None:
        """`lookup(key_id)`: the store's current record; `clock()`: unix seconds."""
        self._lookup = lookup
        self._clock = clock
        self._cache_size = cache_size
        # sha256(secret) -> (the record it verified against, the credential that matched)
        self._verified: OrderedDict[bytes, tuple[KeyRecord, Credential]] = OrderedDict()

    async def authenticate(self, secret: str) -> Identity:
        key_id = key_id_of(secret)
        if key_id is None:
            raise UnauthenticatedError(INVALID)
        record = await self._lookup(key_id)
        if record is None:
            raise UnauthenticatedError(INVALID)
        now = self._clock()
        credential = self._verified_credential(secret, record, now)
        if credential is None:
            raise UnauthenticatedError(INVALID)
        if not record.enabled:
            raise UnauthenticatedError(f"API key {key_id} is disabled")
        if record.expires_at is not None and now >= record.expires_at:
            raise UnauthenticatedError(f"API key {key_id} has expired")
        return record.identity

    def _verified_credential(self, secret: str, record: KeyRecord, now: float) -> Credential | None:
        digest = hashlib.sha256(secret.encode()).digest()
        cached = self._verified.get(digest)
        if cached is not None and cached[0] is record:
            credential = cached[1]
            return credential if credential.not_after is None or now < credential.not_after else None
        for credential in record.live_credentials(now):
            if verify_secret(secret, credential.secret_hash):
                self._remember(digest, record, credential)
                return credential
        return None

    def _remember(self, digest: bytes, record: KeyRecord, credential: Credential) -> None:
        self._verified[digest] = (record, credential)
        self._verified.move_to_end(digest)
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)


def bearer_secret(authorization: str) -> str | None:
    """The token of an `authorization: Bearer <token>` value, or None."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
