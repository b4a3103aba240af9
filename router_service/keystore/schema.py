"""The on-disk / on-the-wire shape of a key definition (pydantic at the edge), and its conversion
to the frozen `KeyRecord` the request path uses. The file store reads a list of these; the Redis
store keeps one as JSON per key id."""

from __future__ import annotations

import datetime
from typing import Literal

from pydantic import Field, field_validator

from router_service.domain import DataSensitivity
from router_service.identity.key_secret import KEY_ID_RE, check_hash
from router_service.identity.model import DEFAULT_SCOPES, Identity, Scope
from router_service.identity.records import Credential, KeyRecord
from router_service.schema_base import StrictModel

ScopeName = Literal["route", "complete", "stream", "feedback", "evaluate", "admin"]


class SecretConfig(StrictModel):
    hash: str  # sha256$<salt hex>$<digest hex>, from `routerctl keys create`
    not_after: datetime.datetime | None = None  # set by rotation: the old secret's last moment

    @field_validator("hash")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        check_hash(value)
        return value


class IdentityConfig(StrictModel):
    """Who a key, a client certificate or the anonymous caller is, and what it may use."""

    team: str = ""
    customer: str = ""
    user: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    scopes: list[ScopeName] = Field(default_factory=lambda: sorted(s.value for s in DEFAULT_SCOPES))
    models: list[str] = Field(default_factory=list)  # catalog models or provider/model; empty: every one
    aliases: list[str] = Field(default_factory=list)  # empty: every alias
    policies: list[str] = Field(default_factory=list)  # empty: every policy
    # Every request is treated as at least this sensitive (routing picks deployments cleared for it).
    min_sensitivity: Literal["public", "internal", "restricted"] | None = None
    regions: list[str] = Field(default_factory=list)  # empty: every region
    default_policy: str = ""  # used when a request names no policy

    def to_identity(self, key_id: str) -> Identity:
        return Identity(
            key_id=key_id,
            team=self.team,
            customer=self.customer,
            user=self.user,
            labels=dict(self.labels),
            scopes=frozenset(Scope(s) for s in self.scopes),
            allowed_models=frozenset(self.models),
            allowed_aliases=frozenset(self.aliases),
            allowed_policies=frozenset(self.policies),
            min_sensitivity=DataSensitivity(self.min_sensitivity) if self.min_sensitivity else None,
            allowed_regions=frozenset(self.regions),
            default_policy=self.default_policy,
        )


class KeyConfig(IdentityConfig):
    id: str = Field(pattern=f"^{KEY_ID_RE.pattern}$")
    enabled: bool = True
    expires_at: datetime.datetime | None = None
    secrets: list[SecretConfig] = Field(min_length=1)

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime.datetime | None) -> datetime.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2027-01-01T00:00:00Z")
        return value

    def to_record(self) -> KeyRecord:
        identity = self.to_identity(self.id)
        credentials = tuple(
            Credential(s.hash, s.not_after.timestamp() if s.not_after else None) for s in self.secrets
        )
        return KeyRecord(
            identity=identity,
            credentials=credentials,
            enabled=self.enabled,
            expires_at=self.expires_at.timestamp() if self.expires_at else None,
        )

    @classmethod
    def from_record(cls, record: KeyRecord) -> KeyConfig:
        ident = record.identity
        return cls(
            id=ident.key_id,
            team=ident.team,
            customer=ident.customer,
            user=ident.user,
            labels=dict(ident.labels),
            scopes=sorted(s.value for s in ident.scopes),
            models=sorted(ident.allowed_models),
            aliases=sorted(ident.allowed_aliases),
            policies=sorted(ident.allowed_policies),
            min_sensitivity=ident.min_sensitivity.value if ident.min_sensitivity else None,
            regions=sorted(ident.allowed_regions),
            default_policy=ident.default_policy,
            enabled=record.enabled,
            expires_at=_utc(record.expires_at),
            secrets=[
                SecretConfig(hash=c.secret_hash, not_after=_utc(c.not_after)) for c in record.credentials
            ],
        )


class KeyFileConfig(StrictModel):
    keys: list[KeyConfig] = Field(default_factory=list)

    @field_validator("keys")
    @classmethod
    def _unique_ids(cls, keys: list[KeyConfig]) -> list[KeyConfig]:
        seen: set[str] = set()
        for key in keys:
            if key.id in seen:
                raise ValueError(f"duplicate key id {key.id!r}")
            seen.add(key.id)
        return keys


def _utc(unix_s: float | None) -> datetime.datetime | None:
    return None if unix_s is None else datetime.datetime.fromtimestamp(unix_s, datetime.UTC)


def error_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as config messages spell it: `keys[0].secrets`, `models[2].provider`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
