"""Config reload swaps policies atomically without dropping in-flight requests; live routing
state is visible as metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import grpc
import pytest
from prometheus_client import REGISTRY

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict


async def test_reload_swaps_policies_and_in_flight_requests_finish(router: RouterApp, sims: Sims) -> None:
    await sims.set_profile("sim-a", latency_ms_p50=300)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        in_flight = asyncio.ensure_future(stub.Complete(pb.CompleteRequest(chat=chat()), timeout=5))
        await asyncio.sleep(0.1)

        reversed_config = router_config_dict(sims)
        reversed_config["policies"] = {"default": {"models": ["m3", "m2", "m1"]}}
        router.reload(parse_config(reversed_config))

        decision = (await stub.Route(pb.RouteRequest(chat=chat()), timeout=5)).decision
        finished = await in_flight
    assert decision.chosen == "sim-c/m3"
    assert finished.routing.provider == "sim-a"  # started before the reload, finished on the old plan


async def test_breaker_state_is_exported_per_deployment(router: RouterApp, sims: Sims) -> None:
    await sims.set_profile("sim-a", error_rate=1.0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        for _ in range(6):
            await stub.Complete(pb.CompleteRequest(chat=chat()), timeout=5)
        decision = (await stub.Route(pb.RouteRequest(chat=chat()), timeout=5)).decision

    def state(provider: str, value: str) -> float | None:
        labels = {"provider": provider, "model": {"sim-a": "m1", "sim-b": "m2"}[provider], "state": value}
        return REGISTRY.get_sample_value("llmrouter_deployment_breaker_state", labels)

    assert state("sim-a", "open") == 1.0 and state("sim-a", "closed") == 0.0
    assert state("sim-b", "closed") == 1.0
    excluded = {f"{c.provider}/{c.model}": c.exclusion_reason for c in decision.candidates if not c.eligible}
    assert excluded.get("sim-a/m1")  # Route explains the open breaker


async def test_a_reload_cannot_turn_on_a_cache_that_was_off_at_start_and_says_so(
    router: RouterApp, sims: Sims, caplog: pytest.LogCaptureFixture
) -> None:
    running = router.config
    assert not running.cache.enabled
    cache_on = running.cache.model_copy(update={"enabled": True, "policies": ("default",)})
    with caplog.at_level(logging.WARNING, logger="router_service.app"):
        router.reload(dataclasses.replace(running, cache=cache_on))
    assert any("cache.enabled is ignored until a restart" in r.getMessage() for r in caplog.records)
    request = pb.CompleteRequest(chat=chat(options=pb.GenerationOptions(temperature=0.0)))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
        stub = pb_grpc.RouterServiceStub(channel)
        before = sum([(await sims.stats(n))["requests"] for n in ("sim-a", "sim-b", "sim-c")])
        for _ in range(2):
            assert not (await stub.Complete(request, timeout=5)).routing.HasField("cache")
        after = sum([(await sims.stats(n))["requests"] for n in ("sim-a", "sim-b", "sim-c")])
    assert after - before == 2  # both went upstream: no cache was built at start
