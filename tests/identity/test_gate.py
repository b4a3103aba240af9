"""The auth gate's modes over a real authenticator and an in-memory lookup."""

from __future__ import annotations

import time

import pytest

from router_service.errors import PermissionDeniedError, UnauthenticatedError
from router_service.identity import key_secret
from router_service.identity.authenticator import Authenticator
from router_service.identity.gate import AuthGate, AuthMode
from router_service.identity.model import UNRESTRICTED, Identity, Scope
from router_service.identity.records import Credential, KeyRecord

SECRET = key_secret.new_secret("k_team")
RECORD = KeyRecord(
    Identity(key_id="k_team", team="search", scopes=frozenset({Scope.COMPLETE})),
    (Credential(key_secret.hash_secret(SECRET)),),
)
ANONYMOUS = Identity(key_id="anonymous", team="guests", scopes=frozenset({Scope.ROUTE}))
MESH = Identity(key_id="cert:billing", team="billing", scopes=frozenset({Scope.COMPLETE}))


async def lookup(key_id: str) -> KeyRecord | None:
    return RECORD if key_id == "k_team" else None


def gate(mode: AuthMode) -> AuthGate:
    return AuthGate(
        mode,
        Authenticator(lookup, time.time),
        anonymous=ANONYMOUS,
        certificate_identities={"CN=billing.svc": MESH},
    )


async def test_required_accepts_a_key_or_a_mapped_certificate_only() -> None:
    g = gate(AuthMode.REQUIRED)
    assert (await g.identify(SECRET, None, Scope.COMPLETE)).team == "search"
    assert (await g.identify(None, "CN=billing.svc", Scope.COMPLETE)) is MESH
    with pytest.raises(UnauthenticatedError, match="missing credentials"):
        await g.identify(None, None, Scope.COMPLETE)
    with pytest.raises(UnauthenticatedError):
        await g.identify(None, "CN=stranger", Scope.COMPLETE)


async def test_a_key_is_checked_before_any_certificate() -> None:
    with pytest.raises(UnauthenticatedError):
        await gate(AuthMode.REQUIRED).identify("lrk_k_team.wrong", "CN=billing.svc", Scope.COMPLETE)


async def test_optional_gives_the_anonymous_identity_only_to_callers_without_credentials() -> None:
    g = gate(AuthMode.OPTIONAL)
    assert await g.identify(None, None, Scope.ROUTE) is ANONYMOUS
    with pytest.raises(PermissionDeniedError):
        await g.identify(None, None, Scope.COMPLETE)  # the anonymous identity's own scopes
    with pytest.raises(UnauthenticatedError):
        await g.identify("lrk_nope.x", None, Scope.ROUTE)  # a bad key is not anonymous


async def test_off_restricts_nothing_and_attributes_nothing() -> None:
    g = AuthGate(AuthMode.OFF, None)
    assert await g.identify(None, None, Scope.FEEDBACK) is UNRESTRICTED
    with pytest.raises(PermissionDeniedError):
        await g.identify(None, None, Scope.ADMIN)


async def test_scopes_are_enforced_for_valid_keys() -> None:
    with pytest.raises(PermissionDeniedError) as err:
        await gate(AuthMode.REQUIRED).identify(SECRET, None, Scope.FEEDBACK)
    assert err.value.scope == "feedback"


def test_a_mode_that_checks_keys_needs_a_store() -> None:
    with pytest.raises(ValueError):
        AuthGate(AuthMode.REQUIRED, None)
