"""What a key store holds per key id: the identity, and the credentials (hashed secrets) that
prove it. Rotation adds a credential and gives the old one an end (the grace period)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from router_service.identity.model import Identity


@dataclass(frozen=True, slots=True)
class Credential:
    secret_hash: str  # key_secret.hash_secret's output
    not_after: float | None = None  # unix seconds; set on the old secret when the key is rotated


@dataclass(frozen=True, slots=True)
class KeyRecord:
    identity: Identity
    credentials: tuple[Credential, ...]
    enabled: bool = True
    expires_at: float | None = None  # unix seconds; the whole key, every credential

    @property
    def key_id(self) -> str:
        return self.identity.key_id

    def usable(self, now: float) -> bool:
        return self.enabled and (self.expires_at is None or now < self.expires_at)

    def live_credentials(self, now: float) -> tuple[Credential, ...]:
        return tuple(c for c in self.credentials if c.not_after is None or now < c.not_after)

    def rotated(self, new_hash: str, now: float, grace_s: float) -> KeyRecord:
        """This record with `new_hash` as its current secret; the secrets in use until now stay
        valid for `grace_s` more seconds (never longer than they already would), then stop."""
        end = now + max(0.0, grace_s)
        kept = tuple(
            replace(c, not_after=end if c.not_after is None else min(c.not_after, end))
            for c in self.live_credentials(now)
        )
        return replace(self, credentials=(*kept, Credential(new_hash)))
