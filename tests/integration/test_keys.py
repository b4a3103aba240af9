"""Virtual keys over real gRPC: a real router with `auth.mode: required` over a real key file,
real simulated providers. Statuses and their details, access by pin/alias/policy, scopes,
hot reload, rotation, health staying open, and the secrets found nowhere."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.identity.model import Identity, Scope
from router_service.keystore.admin import create_key, rotate_key, set_enabled
from router_service.keystore.file_store import FileKeyStore
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict


class Keys:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.admin = FileKeyStore(path, poll_s=0)
        self.secrets: dict[str, str] = {}

    async def create(self, key_id: str, **identity: Any) -> str:
        _, secret = await create_key(self.admin, Identity(key_id=key_id, **identity))
        self.secrets[key_id] = secret
        return secret


@pytest.fixture
async def keys(tmp_path: Path) -> Keys:
    keys = Keys(tmp_path / "keys.yaml")
    await keys.admin.start()
    await keys.create("k_full", team="search", customer="acme", scopes=frozenset(Scope) - {Scope.ADMIN})
    await keys.create(
        "k_cheap",
        team="search",
        customer="acme",
        allowed_models=frozenset({"m1"}),
        allowed_aliases=frozenset({"cheap"}),
    )
    await keys.create("k_off", team="other")
    await set_enabled(keys.admin, "k_off", False)
    return keys


@pytest.fixture
async def secured(sims: Sims, keys: Keys) -> AsyncIterator[RouterApp]:
    config = router_config_dict(sims)
    config["auth"] = {"mode": "required", "keys_file": str(keys.path), "keys_file_poll_s": 0.05}
    config["aliases"]["cheap"] = ["m1"]
    app = RouterApp(parse_config(config))
    await app.start()
    yield app
    await app.stop(grace_s=1)


@pytest.fixture
async def client(secured: RouterApp) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        yield channel


def bearer(secret: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret}"),)


async def failure(call: Any) -> tuple[grpc.StatusCode, error_details_pb2.ErrorInfo, list[Any], str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    status = rpc_status.from_call(err.value)
    assert status is not None
    info, others = error_details_pb2.ErrorInfo(), []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            resource = error_details_pb2.ResourceInfo()
            detail.Unpack(resource)
            others.append(resource)
    return err.value.code(), info, others, err.value.details() or ""


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Basic dXNlcjpwYXNz"),), bearer("lrk_k_nope." + "a" * 43), bearer("garbage")],
)
async def test_calls_without_a_valid_key_are_unauthenticated(
    client: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]
) -> None:
    stub = pb_grpc.RouterServiceStub(client)
    for call in (
        stub.Complete(pb.CompleteRequest(chat=chat()), metadata=metadata),
        stub.Route(pb.RouteRequest(chat=chat()), metadata=metadata),
        stub.Feedback(pb.FeedbackRequest(request_id="r1", score=1), metadata=metadata),
    ):
        code, info, _, _ = await failure(call)
        assert code is grpc.StatusCode.UNAUTHENTICATED
        assert (info.reason, info.domain) == ("UNAUTHENTICATED", "llmrouter.router.v1")


async def test_a_wrong_secret_of_a_real_key_reads_like_an_unknown_key(
    client: grpc.aio.Channel, keys: Keys
) -> None:
    stub = pb_grpc.RouterServiceStub(client)
    real_id_wrong_secret = keys.secrets["k_full"][:-4] + "AAAA"
    messages = set()
    for secret in (real_id_wrong_secret, "lrk_k_nobody." + "b" * 43):
        _, _, _, message = await failure(
            stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(secret))
        )
        messages.add(message)
    assert messages == {"invalid API key"}


async def test_a_disabled_key_is_refused(client: grpc.aio.Channel, keys: Keys) -> None:
    stub = pb_grpc.RouterServiceStub(client)
    code, _, _, message = await failure(
        stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(keys.secrets["k_off"]))
    )
    assert code is grpc.StatusCode.UNAUTHENTICATED and "disabled" in message


async def test_a_valid_key_is_answered(client: grpc.aio.Channel, keys: Keys) -> None:
    stub = pb_grpc.RouterServiceStub(client)
    response = await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(keys.secrets["k_full"]))
    assert response.message.content


@pytest.mark.parametrize(
    ("selection", "kind", "name"),
    [
        ({"model": pb.ModelSelector(model="m3")}, "model", "m3"),
        ({"model": pb.ModelSelector(model="sim-c/m3")}, "model", "sim-c/m3"),
        ({"model": pb.ModelSelector(alias="reverse")}, "alias", "reverse"),
    ],
)
async def test_a_key_limited_to_cheap_models_cannot_pin_others(
    client: grpc.aio.Channel, keys: Keys, selection: dict[str, Any], kind: str, name: str
) -> None:
    stub = pb_grpc.RouterServiceStub(client)
    for call in (
        stub.Complete(pb.CompleteRequest(chat=chat(**selection)), metadata=bearer(keys.secrets["k_cheap"])),
        stub.Route(pb.RouteRequest(chat=chat(**selection)), metadata=bearer(keys.secrets["k_cheap"])),
    ):
        code, info, resources, _ = await failure(call)
        assert code is grpc.StatusCode.PERMISSION_DENIED
        assert info.reason == "PERMISSION_DENIED"
        assert (info.metadata["kind"], info.metadata["name"]) == (kind, name)
        assert [(r.resource_type, r.resource_name) for r in resources] == [(kind, name)]


async def test_automatic_routing_for_a_limited_key_excludes_what_it_may_not_use(
    client: grpc.aio.Channel, keys: Keys, sims: Sims
) -> None:
    stub = pb_grpc.RouterServiceStub(client)
    decision = (
        await stub.Route(pb.RouteRequest(chat=chat()), metadata=bearer(keys.secrets["k_cheap"]))
    ).decision
    assert decision.chosen == "sim-a/m1" and not decision.fallbacks
    reasons = {f"{c.provider}/{c.model}": c.exclusion_reason for c in decision.candidates}
    assert "not allowed for this API key" in reasons["sim-b/m2"]
    assert "not allowed for this API key" in reasons["sim-c/m3"]
    await sims.set_profile("sim-a", error_rate=1.0)
    code, _, _, _ = await failure(
        stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(keys.secrets["k_cheap"]))
    )
    assert code is grpc.StatusCode.UNAVAILABLE  # no fallback to models the key may not use
    assert (await sims.stats("sim-b"))["requests"] == 0
    assert (await sims.stats("sim-c"))["requests"] == 0


async def test_feedback_needs_the_feedback_scope(client: grpc.aio.Channel, keys: Keys) -> None:
    stub = pb_grpc.RouterServiceStub(client)
    response = await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(keys.secrets["k_cheap"]))
    request_id = response.routing.request_id
    code, info, _, _ = await failure(
        stub.Feedback(
            pb.FeedbackRequest(request_id=request_id, score=1), metadata=bearer(keys.secrets["k_cheap"])
        )
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED and info.metadata["scope"] == "feedback"
    await stub.Feedback(
        pb.FeedbackRequest(request_id=request_id, score=1), metadata=bearer(keys.secrets["k_full"])
    )


async def test_health_and_reflection_need_no_key(client: grpc.aio.Channel) -> None:
    answer = await health_pb2_grpc.HealthStub(client).Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(client)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [listed] = [r async for r in reflect.ServerReflectionInfo(iter([request]), timeout=10)]
    assert "router.v1.RouterService" in {s.name for s in listed.list_services_response.service}


async def test_new_keys_rotation_and_disabling_reach_the_running_router(
    client: grpc.aio.Channel, keys: Keys
) -> None:
    stub = pb_grpc.RouterServiceStub(client)
    fresh = await keys.create("k_new", team="late")
    await eventually(lambda: stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(fresh)))

    _, rotated = await rotate_key(keys.admin, "k_new", grace_s=3600)
    await eventually(lambda: stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(rotated)))
    await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(fresh))  # grace period

    await set_enabled(keys.admin, "k_new", False)

    async def refused() -> None:
        try:
            await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(rotated))
        except grpc.aio.AioRpcError as err:
            assert err.code() is grpc.StatusCode.UNAUTHENTICATED
            return
        raise AssertionError("a disabled key was still accepted")

    await eventually(refused)


async def test_a_broken_key_file_keeps_the_keys_in_force(
    client: grpc.aio.Channel, keys: Keys, secured: RouterApp
) -> None:
    store = secured.key_store
    assert isinstance(store, FileKeyStore)
    keys.path.write_text("keys: [")
    for _ in range(200):
        if store.reload_failures:
            break
        await asyncio.sleep(0.02)
    assert store.reload_failures
    stub = pb_grpc.RouterServiceStub(client)
    await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(keys.secrets["k_full"]))


async def test_canary_secrets_appear_in_no_log_and_no_error(
    client: grpc.aio.Channel, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stub = pb_grpc.RouterServiceStub(client)
    canary = keys.secrets["k_cheap"]
    texts = []
    await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(canary))
    for call in (
        stub.Complete(
            pb.CompleteRequest(chat=chat(model=pb.ModelSelector(model="m3"))), metadata=bearer(canary)
        ),
        stub.Feedback(pb.FeedbackRequest(request_id="x", score=1), metadata=bearer(canary)),
        stub.Complete(pb.CompleteRequest(chat=chat()), metadata=bearer(canary + "x")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        texts.append(err.value.details() or "")
        texts.append(repr(err.value.trailing_metadata()))
    texts.append(caplog.text)
    texts.append(keys.path.read_text())
    random_part = canary.split(".", 1)[1]
    for text in texts:
        assert all(random_part[i : i + 8] not in text for i in range(len(random_part) - 8))


async def eventually(action: Any, attempts: int = 200) -> None:
    """Run `action` until it stops raising: the router picks key file changes up by polling."""
    for _ in range(attempts - 1):
        try:
            await action()
            return
        except (grpc.aio.AioRpcError, AssertionError):
            await asyncio.sleep(0.02)
    await action()


def routerctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "router_service.routerctl", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


async def test_routerctl_creates_a_key_the_running_router_accepts(secured: RouterApp, keys: Keys) -> None:
    created = await asyncio.to_thread(
        routerctl, "keys", "create", "--keys-file", str(keys.path), "--id", "k_cli", "--team", "ops"
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("lrk_k_cli.") and secret not in keys.path.read_text()
    target = f"127.0.0.1:{secured.port}"

    async def complete() -> None:
        done = await asyncio.to_thread(
            routerctl, "--target", target, "complete", "hello", env={"ROUTER_API_KEY": secret}
        )
        assert done.returncode == 0, done.stderr

    await eventually(complete)
    refused = await asyncio.to_thread(routerctl, "--target", target, "complete", "hello")
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    listed = await asyncio.to_thread(routerctl, "keys", "list", "--keys-file", str(keys.path))
    assert "k_cli" in listed.stdout and secret not in listed.stdout
    disabled = await asyncio.to_thread(routerctl, "keys", "disable", "k_cli", "--keys-file", str(keys.path))
    assert disabled.returncode == 0 and "disabled" in disabled.stdout


async def test_with_auth_off_any_authorization_metadata_is_ignored(stub: pb_grpc.RouterServiceStub) -> None:
    for value in ("Basic dXNlcjpwYXNz", "Bearer whatever", ""):
        response = await stub.Complete(pb.CompleteRequest(chat=chat()), metadata=(("authorization", value),))
        assert response.message.content
