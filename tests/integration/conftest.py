"""Fixtures for integration tests: real simulated providers over HTTP, a real grpc.aio router on
port 0, and a real client channel. Nothing is mocked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.settings import RuntimeConfig, parse_config
from router_service.sim.presets import preset_config
from router_service.sim.server import SimServer

SIM_NAMES = ("sim-a", "sim-b", "sim-c")
MODELS = {"sim-a": "m1", "sim-b": "m2", "sim-c": "m3"}


class Sims(dict[str, SimServer]):
    """The simulated providers by name, with their admin API."""

    async def set_profile(self, name: str, **profile: Any) -> None:
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"http://127.0.0.1:{self[name].port}/admin/profile", json={"model": "*", "profile": profile}
            )
            r.raise_for_status()

    async def stats(self, name: str) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{self[name].port}/admin/stats")
            r.raise_for_status()
            total: dict[str, Any] = r.json()["total"]
            return total


@pytest.fixture
async def sims() -> AsyncIterator[Sims]:
    servers = Sims({name: SimServer(preset_config("instant", seed=7)) for name in SIM_NAMES})
    for server in servers.values():
        await server.start()
    yield servers
    for server in servers.values():
        await server.stop()


def router_config_dict(sims: Sims, *, max_retries: int = 0, **routing: Any) -> dict[str, Any]:
    """Three sims serving m1, m2, m3. Same-deployment retries are off unless asked for, so that
    fallback tests see one attempt per deployment."""
    return {
        "server": {"listen": "127.0.0.1:0", "grace_period_s": 5},
        "metrics": {"listen": ""},
        "routing": {"attempt_timeout_s": 1.0, "first_token_timeout_s": 1.0, **routing},
        "resilience": {"max_retries": max_retries, "backoff_base_s": 0.01},
        "providers": {
            name: {"kind": "openai", "base_url": server.url, "api_key": f"secret-key-{name}"}
            for name, server in sims.items()
        },
        "models": [
            {
                "name": MODELS[name],
                "provider": name,
                "price_per_mtok": {"input": "0.15", "output": "0.60", "cached_input": "0.075"},
                "capabilities": ["tools", "json", "streaming"],
            }
            for name in sims
        ],
        "aliases": {"reverse": ["m3", "m2", "m1"]},
        "policies": {"default": {"models": ["m1", "m2", "m3"]}},
    }


@pytest.fixture
def router_config(sims: Sims) -> RuntimeConfig:
    return parse_config(router_config_dict(sims))


@pytest.fixture
async def router(router_config: RuntimeConfig) -> AsyncIterator[RouterApp]:
    app = RouterApp(router_config)
    await app.start()
    yield app
    await app.stop(grace_s=1)


@pytest.fixture
async def channel(router: RouterApp) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.RouterServiceStub:
    return pb_grpc.RouterServiceStub(channel)


def chat(text: str = "Hello router", **kwargs: Any) -> pb.ChatRequest:
    return pb.ChatRequest(messages=[pb.Message(role=pb.ROLE_USER, content=text)], **kwargs)
