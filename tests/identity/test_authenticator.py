"""The authenticator and key secrets: pure, an injected clock, an in-memory lookup."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.errors import UnauthenticatedError
from router_service.identity import key_secret
from router_service.identity.authenticator import INVALID, Authenticator, bearer_secret
from router_service.identity.model import Identity, Scope
from router_service.identity.records import Credential, KeyRecord


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Store:
    """A dict behind the lookup interface, counting lookups."""

    def __init__(self, *records: KeyRecord) -> None:
        self.records = {r.key_id: r for r in records}

    async def get(self, key_id: str) -> KeyRecord | None:
        return self.records.get(key_id)


def make_key(key_id: str = "k_test", **identity: object) -> tuple[str, KeyRecord]:
    secret = key_secret.new_secret(key_id)
    record = KeyRecord(
        Identity(key_id=key_id, **identity),  # type: ignore[arg-type]
        (Credential(key_secret.hash_secret(secret)),),
    )
    return secret, record


def test_secret_names_its_key_id_and_verifies_only_itself() -> None:
    secret = key_secret.new_secret("k_search")
    assert key_secret.key_id_of(secret) == "k_search"
    stored = key_secret.hash_secret(secret)
    assert key_secret.verify_secret(secret, stored)
    assert not key_secret.verify_secret(secret[:-1] + ("A" if secret[-1] != "A" else "B"), stored)
    assert secret not in stored


def test_equal_secrets_hash_differently_under_different_salts() -> None:
    secret = key_secret.new_secret("k_x")
    assert key_secret.hash_secret(secret) != key_secret.hash_secret(secret)


@pytest.mark.parametrize(
    "stored",
    ["", "md5$00$00", "sha256$zz$" + "0" * 64, "sha256$00$" + "0" * 64, "sha256$" + "0" * 32 + "$00"],
)
def test_malformed_hashes_are_refused(stored: str) -> None:
    with pytest.raises(ValueError):
        key_secret.check_hash(stored)


@pytest.mark.parametrize("text", ["", "sk-abc", "lrk_k_x", "lrk_k_x.short", "lrk_bad id." + "a" * 43])
def test_malformed_secrets_name_no_key(text: str) -> None:
    assert key_secret.key_id_of(text) is None


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), ("", None)],
)
def test_bearer_secret(header: str, token: str | None) -> None:
    assert bearer_secret(header) == token


async def test_a_valid_key_gives_its_identity() -> None:
    secret, record = make_key(team="search", customer="acme", scopes=frozenset({Scope.COMPLETE}))
    ident = await Authenticator(Store(record).get, Clock()).authenticate(secret)
    assert (ident.key_id, ident.team, ident.customer) == ("k_test", "search", "acme")


async def test_unknown_wrong_and_malformed_keys_fail_alike() -> None:
    _, record = make_key()
    auth = Authenticator(Store(record).get, Clock())
    other_secret, _ = make_key("k_other")
    wrong = key_secret.new_secret("k_test")
    messages = set()
    for presented in (other_secret, wrong, "garbage"):
        with pytest.raises(UnauthenticatedError) as err:
            await auth.authenticate(presented)
        messages.add(str(err.value))
    assert messages == {INVALID}


async def test_disabled_and_expired_keys_are_refused_but_only_their_holder_learns_why() -> None:
    clock = Clock()
    secret, record = make_key()
    store = Store(dataclasses.replace(record, enabled=False))
    auth = Authenticator(store.get, clock)
    with pytest.raises(UnauthenticatedError, match="disabled"):
        await auth.authenticate(secret)
    store.records["k_test"] = dataclasses.replace(record, expires_at=clock.now - 1)
    with pytest.raises(UnauthenticatedError, match="expired"):
        await auth.authenticate(secret)
    with pytest.raises(UnauthenticatedError, match=r"^invalid API key$"):
        await auth.authenticate(key_secret.new_secret("k_test"))


async def test_verification_is_cached_per_record_and_redone_when_the_record_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret, record = make_key()
    store = Store(record)
    auth = Authenticator(store.get, Clock())
    calls = 0
    original = key_secret.verify_secret

    def counting(s: str, h: str) -> bool:
        nonlocal calls
        calls += 1
        return original(s, h)

    monkeypatch.setattr("router_service.identity.authenticator.verify_secret", counting)
    for _ in range(5):
        await auth.authenticate(secret)
    assert calls == 1
    store.records["k_test"] = dataclasses.replace(record, enabled=False)
    with pytest.raises(UnauthenticatedError, match="disabled"):
        await auth.authenticate(secret)
    assert calls == 2


async def test_rotation_keeps_the_old_secret_for_the_grace_period_only() -> None:
    clock = Clock()
    old_secret, record = make_key()
    new_secret = key_secret.new_secret("k_test")
    store = Store(record)
    auth = Authenticator(store.get, clock)
    await auth.authenticate(old_secret)  # cached before the rotation
    store.records["k_test"] = record.rotated(key_secret.hash_secret(new_secret), clock.now, grace_s=60)
    assert (await auth.authenticate(old_secret)).key_id == "k_test"
    assert (await auth.authenticate(new_secret)).key_id == "k_test"
    clock.now += 61
    with pytest.raises(UnauthenticatedError):
        await auth.authenticate(old_secret)
    assert (await auth.authenticate(new_secret)).key_id == "k_test"


def test_a_second_rotation_never_extends_an_earlier_grace() -> None:
    _, record = make_key()
    once = record.rotated(key_secret.hash_secret("a"), now=0, grace_s=10)
    twice = once.rotated(key_secret.hash_secret("b"), now=5, grace_s=3600)
    ends = [c.not_after for c in twice.credentials]
    assert ends == [10, 3605, None]


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=80))
async def test_arbitrary_presented_text_never_authenticates_nor_raises_anything_else(text: str) -> None:
    _, record = make_key()
    auth = Authenticator(Store(record).get, Clock())
    with pytest.raises(UnauthenticatedError):
        await auth.authenticate(text)
