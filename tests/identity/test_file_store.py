"""The key file store on real files: load, round trip, hot reload, a broken file on reload."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import stat
from pathlib import Path

import pytest

from router_service.domain import DataSensitivity
from router_service.identity import key_secret
from router_service.identity.model import Identity, Scope
from router_service.identity.records import Credential, KeyRecord
from router_service.keystore.file_store import FileKeyStore, KeyFileError, read_key_file, write_key_file


def record(key_id: str = "k_a", **identity: object) -> KeyRecord:
    secret_hash = key_secret.hash_secret(key_secret.new_secret(key_id))
    return KeyRecord(Identity(key_id=key_id, **identity), (Credential(secret_hash),))  # type: ignore[arg-type]


def test_records_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    full = KeyRecord(
        Identity(
            key_id="k_full",
            team="search",
            customer="acme",
            user="ana",
            labels={"env": "prod"},
            scopes=frozenset({Scope.COMPLETE, Scope.FEEDBACK}),
            allowed_models=frozenset({"gpt-4o-mini"}),
            allowed_aliases=frozenset({"fast"}),
            allowed_policies=frozenset({"cheap"}),
            min_sensitivity=DataSensitivity.INTERNAL,
            allowed_regions=frozenset({"eu"}),
            default_policy="cheap",
        ),
        (
            Credential(key_secret.hash_secret("old"), not_after=1_900_000_000.0),
            Credential("sha256$" + "ab" * 16 + "$" + "cd" * 32),
        ),
        enabled=False,
        expires_at=2_000_000_000.0,
    )
    write_key_file(path, [full, record("k_min")])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = read_key_file(path)
    assert loaded["k_full"] == full
    assert loaded["k_min"].identity.scopes == frozenset({Scope.ROUTE, Scope.COMPLETE, Scope.STREAM})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("keys: [{id: k_a, secrets: []}]", "keys[0].secrets"),
        ("keys: [{id: 'bad id', secrets: [{hash: x}]}]", "keys[0].id"),
        ("keys: [{id: k_a, secrets: [{hash: 'md5$1$2'}]}]", "unknown key hash scheme"),
        ("keys: [{id: k_a, scopes: [root], secrets: [{hash: 'sha256$00$00'}]}]", "keys[0].scopes[0]"),
        ("keys: [{id: k_a, colour: red, secrets: []}]", "colour"),
        ("keys: [{id: k_a, expires_at: '2027-01-01T00:00:00', secrets: []}]", "time zone"),
        ("keys: [", "keys.yaml"),
    ],
)
def test_invalid_files_name_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    with pytest.raises(KeyFileError, match=re.escape(problem)):
        read_key_file(path)


def test_duplicate_key_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    write_key_file(path, [record("k_a")])
    path.write_text(path.read_text() + path.read_text().split("keys:\n", 1)[1])
    with pytest.raises(KeyFileError, match="duplicate key id"):
        read_key_file(path)


async def test_a_changed_file_is_picked_up_and_a_broken_one_ignored(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    first = record("k_a", team="one")
    write_key_file(path, [first])
    store = FileKeyStore(path, poll_s=0.05)
    await store.start()
    try:
        kept = await store.get("k_a")
        assert kept is not None and kept.identity.team == "one"
        second = record("k_b")
        write_key_file(path, [first, second])
        for _ in range(200):
            if await store.get("k_b") is not None:
                break
            await asyncio.sleep(0.02)
        assert await store.get("k_b") == second
        assert await store.get("k_a") is kept  # unchanged records keep their object (cache stays warm)
        path.write_text("keys: [")
        for _ in range(200):
            if store.reload_failures:
                break
            await asyncio.sleep(0.02)
        assert store.reload_failures >= 1
        assert await store.get("k_b") == second  # the keys in force stay
    finally:
        await store.stop()


async def test_put_disables_a_key_for_the_running_store(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    write_key_file(path, [record("k_a")])
    store = FileKeyStore(path, poll_s=0)
    await store.start()
    current = await store.get("k_a")
    assert current is not None and current.enabled
    await store.put(dataclasses.replace(current, enabled=False))
    after = await store.get("k_a")
    assert after is not None and not after.enabled
    assert not read_key_file(path)["k_a"].enabled


async def test_a_bad_file_at_start_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("keys: [{id: k_a}]")
    with pytest.raises(KeyFileError):
        await FileKeyStore(path).start()
