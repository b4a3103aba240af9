"""Issue 19, item 3: a router started while a provider is failing demotes it from its first request.

Real parts: router A and, later, router B over loopback gRPC, the simulated providers over HTTP,
the embedded broker and the health/quality/costs consumers. A opens its breaker on sim-a; once
the health snapshots say so, B starts cold. Before fleet.startup_wait_s, B served as soon as its
port was up, on an empty fleet view, so its first requests led with the dead provider.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.embedded.broker import EmbeddedBroker
from router_service.fleet.config import FleetConfig
from router_service.fleet.subscriber import read_fleet_view
from router_service.resilience.breaker import BreakerState
from tests.integration.conftest import Sims, chat
from tests.integration.test_fleet_feedback import FAILING, Consumers, _name, _router_config, _wait_for

pytestmark = pytest.mark.timeout(120)


def _cold_config(sims: Sims, broker: EmbeddedBroker, topics: dict[str, str], spool: Path) -> Any:
    config = _router_config(sims, broker, topics, spool, 30.0)
    assert config.fleet is not None
    # A demoted deployment still leads min_share of the requests, drawn at random: a share of
    # 1e-9 makes "the first request goes elsewhere" a certainty rather than a 98% chance. The wait
    # is long for a loaded 2-core box; the read itself takes well under a second.
    fleet = dataclasses.replace(config.fleet, min_share=1e-9, startup_wait_s=30.0)
    return dataclasses.replace(config, fleet=fleet)


async def test_a_router_started_after_the_failure_began_sends_its_first_request_elsewhere(
    sims: Sims, kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topics = {kind: _name(kind) for kind in ("events", "health", "quality", "costs")}
    router_a = RouterApp(_router_config(sims, kafka_broker, topics, tmp_path / "a", 30.0))
    await router_a.start()  # creates the events topic, which the consumers need
    consumers = Consumers(kafka_broker, topics)
    router_b: RouterApp | None = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{router_a.port}") as ch_a:
            a = pb_grpc.RouterServiceStub(ch_a)
            for _ in range(20):
                assert (await a.Complete(pb.CompleteRequest(chat=chat()))).routing.provider == "sim-a"
            await sims.set_profile("sim-a", error_rate=1.0)
            while router_a.engine.live.breaker_state(FAILING, time.monotonic()) is not BreakerState.OPEN:
                await a.Complete(pb.CompleteRequest(chat=chat()))  # falls back to m2, answers

        health_only = FleetConfig(health_topic=topics["health"], quality_topic="", costs_topic="")

        async def snapshots_say_failing() -> bool:
            health = (await read_fleet_view(kafka_broker.bootstrap, health_only)).health.get(FAILING)
            return health is not None and health.failing

        await _wait_for(snapshots_say_failing, 30)

        router_b = RouterApp(
            _cold_config(sims, kafka_broker, topics, tmp_path / "b"), registry=CollectorRegistry()
        )
        await router_b.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{router_b.port}") as ch_b:
            first = await pb_grpc.RouterServiceStub(ch_b).Complete(pb.CompleteRequest(chat=chat()))
        assert [attempt.provider for attempt in first.routing.attempts] == ["sim-b"], first.routing
        assert router_b.registry.get_sample_value("llmrouter_fleet_view_ready") == 1
        engine = router_b.engine
        assert engine.fleet is not None
        assert engine.fleet.demoted.get(FAILING) == engine.fleet.config.min_share
        assert engine.live.error_rate(FAILING, time.monotonic()) == 0.0  # B never tried it
    finally:
        await consumers.stop()
        if router_b is not None:
            await router_b.stop(grace_s=1)
        await router_a.stop(grace_s=1)
