"""Key management over the file store on real files; the router's view follows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_service.errors import UnauthenticatedError
from router_service.identity.authenticator import Authenticator
from router_service.identity.model import Identity
from router_service.keystore.admin import KeyAdminError, create_key, rotate_key, set_enabled
from router_service.keystore.file_store import FileKeyStore


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_create_rotate_disable_as_the_router_sees_them(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    admin, router = FileKeyStore(path, poll_s=0), FileKeyStore(path, poll_s=0)
    await admin.start()
    clock = Clock()
    record, secret = await create_key(admin, Identity(key_id="", team="search"))
    assert record.key_id.startswith("k_") and secret not in path.read_text()
    await router.start()
    auth = Authenticator(router.get, clock)
    assert (await auth.authenticate(secret)).team == "search"

    _, new_secret = await rotate_key(admin, record.key_id, grace_s=300, clock=clock)
    router.reload()
    assert (await auth.authenticate(secret)).team == "search"  # within the grace period
    assert (await auth.authenticate(new_secret)).team == "search"
    clock.now += 301
    with pytest.raises(UnauthenticatedError):
        await auth.authenticate(secret)

    await set_enabled(admin, record.key_id, False)
    router.reload()
    with pytest.raises(UnauthenticatedError, match="disabled"):
        await auth.authenticate(new_secret)


async def test_errors_name_the_key(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys.yaml", poll_s=0)
    await store.start()
    await create_key(store, Identity(key_id="k_one"))
    with pytest.raises(KeyAdminError, match="k_one exists"):
        await create_key(store, Identity(key_id="k_one"))
    with pytest.raises(KeyAdminError, match="no key k_two"):
        await rotate_key(store, "k_two", 0)
