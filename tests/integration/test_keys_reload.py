"""What a config reload (SIGHUP: `serve` calls RouterApp.reload with the file read again) does to
the key file: it is re-read then, so `auth.keys_file_poll_s: 0` ("reload on SIGHUP only") picks
up new, rotated and disabled keys without a restart. Real router, real gRPC, real key file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.identity.model import Identity
from router_service.keystore.admin import create_key, rotate_key, set_enabled
from router_service.keystore.file_store import FileKeyStore
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict


class Router:
    def __init__(
        self, app: RouterApp, config: dict[str, Any], admin: FileKeyStore, channel: grpc.aio.Channel
    ) -> None:
        self.app, self.config, self.admin = app, config, admin
        self.stub = pb_grpc.RouterServiceStub(channel)

    def sighup(self) -> None:
        self.app.reload(parse_config(self.config))

    async def code_of(self, secret: str) -> grpc.StatusCode:
        try:
            await self.stub.Complete(
                pb.CompleteRequest(chat=chat()), metadata=(("authorization", f"Bearer {secret}"),), timeout=30
            )
        except grpc.aio.AioRpcError as err:
            return err.code()
        return grpc.StatusCode.OK


@pytest.fixture
async def router(sims: Sims, tmp_path: Path) -> AsyncIterator[Router]:
    admin = FileKeyStore(tmp_path / "keys.yaml", poll_s=0)
    await admin.start()
    await create_key(admin, Identity(key_id="k_first"))
    config = router_config_dict(sims)
    # No polling: only a reload may show the router a change of the file.
    config["auth"] = {"mode": "required", "keys_file": str(admin.path), "keys_file_poll_s": 0}
    app = RouterApp(parse_config(config))
    await app.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield Router(app, config, admin, channel)
    await app.stop(grace_s=1)


async def test_a_reload_shows_the_router_new_rotated_and_disabled_keys(router: Router) -> None:
    _, fresh = await create_key(router.admin, Identity(key_id="k_new"))
    assert await router.code_of(fresh) is grpc.StatusCode.UNAUTHENTICATED  # not polled
    router.sighup()
    assert await router.code_of(fresh) is grpc.StatusCode.OK

    _, rotated = await rotate_key(router.admin, "k_new", grace_s=3600)
    router.sighup()
    assert await router.code_of(rotated) is grpc.StatusCode.OK
    assert await router.code_of(fresh) is grpc.StatusCode.OK  # its grace period

    await set_enabled(router.admin, "k_new", False)
    assert await router.code_of(rotated) is grpc.StatusCode.OK  # not reloaded yet
    router.sighup()
    assert await router.code_of(rotated) is grpc.StatusCode.UNAUTHENTICATED


async def test_a_reload_with_a_broken_key_file_keeps_the_keys_in_force(router: Router) -> None:
    _, secret = await create_key(router.admin, Identity(key_id="k_kept"))
    router.sighup()
    router.admin.path.write_text("keys: [")
    router.sighup()  # logged, not raised: the router keeps serving the keys it had
    assert await router.code_of(secret) is grpc.StatusCode.OK
