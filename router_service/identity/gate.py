"""The front doors' one question: who is this caller, and may they call this?

`AuthGate.identify` takes what a door extracted from the call (the bearer token, the verified
client certificate's subject when the transport is mTLS) and the scope the call needs, and
returns the caller's Identity or raises UNAUTHENTICATED / PERMISSION_DENIED. The gRPC servicer
and the HTTP door both call it, so the rules are one.

Modes:
- `required`: a valid key or a mapped client certificate, else UNAUTHENTICATED.
- `optional`: as `required` for callers that present credentials (a bad key is still refused);
  callers that present none get the configured anonymous identity (its own scopes and limits).
- `off`: every caller is UNRESTRICTED (no attribution); the embedded dev default only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from router_service.errors import UnauthenticatedError
from router_service.identity.access import require_scope
from router_service.identity.authenticator import Authenticator
from router_service.identity.model import UNRESTRICTED, Identity, Scope


class AuthMode(enum.Enum):
    REQUIRED = "required"
    OPTIONAL = "optional"
    OFF = "off"


class AuthGate:
    def __init__(
        self,
        mode: AuthMode,
        authenticator: Authenticator | None,
        *,
        anonymous: Identity | None = None,
        certificate_identities: Mapping[str, Identity] | None = None,
    ) -> None:
        if mode is not AuthMode.OFF and authenticator is None:
            raise ValueError(f"auth mode {mode.value} needs a key store")
        self.mode = mode
        self._authenticator = authenticator
        self._anonymous = anonymous or Identity(key_id="anonymous", scopes=frozenset())
        self._certificates = dict(certificate_identities or {})

    @property
    def maps_certificates(self) -> bool:
        """Whether a client certificate can identify a caller (mTLS identities configured)."""
        return bool(self._certificates)

    async def identify(self, bearer: str | None, certificate_subject: str | None, scope: Scope) -> Identity:
        identity = await self._resolve(bearer, certificate_subject)
        require_scope(identity, scope)
        return identity

    async def _resolve(self, bearer: str | None, certificate_subject: str | None) -> Identity:
        if self.mode is AuthMode.OFF:
            return UNRESTRICTED
        if bearer is not None:
            assert self._authenticator is not None
            return await self._authenticator.authenticate(bearer)
        if certificate_subject is not None:
            mapped = self._certificates.get(certificate_subject)
            if mapped is not None:
                return mapped
        if self.mode is AuthMode.OPTIONAL:
            return self._anonymous
        raise UnauthenticatedError("missing credentials: send 'authorization: Bearer <key>'")
