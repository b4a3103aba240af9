"""Issue 19, item 3: one router opens its breaker on a dead provider, every router demotes it.

Real parts: two routers over loopback gRPC, the simulated providers over HTTP, the embedded
broker and the health/quality/costs consumers (tests/integration/test_fleet_feedback.py's
machinery). Router A keeps the default breaker, so it lets only a handful of failures through
after a history of successes: the case whose diluted window score stayed at 0.954 before.
Router B sends nothing to the provider, so its demotion can only come through the snapshots.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.embedded.broker import EmbeddedBroker
from router_service.resilience.breaker import BreakerState
from tests.integration.conftest import Sims, chat
from tests.integration.test_fleet_feedback import FAILING, Consumers, _name, _router_config, _wait_for

pytestmark = pytest.mark.timeout(120)

# Generous for a loaded 2-core box: A's events linger ~0.1 s, the consumers flush every 0.5 s
# here, B rebuilds its view every 0.2 s. The test prints the time it measured.
DEMOTION_BOUND_S = 30.0


@dataclass
class Pair:
    a: pb_grpc.RouterServiceStub
    b: pb_grpc.RouterServiceStub
    router_a: RouterApp
    router_b: RouterApp


@pytest.fixture
async def pair(sims: Sims, kafka_broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[Pair]:
    topics = {kind: _name(kind) for kind in ("events", "health", "quality", "costs")}
    router_a = RouterApp(_router_config(sims, kafka_broker, topics, tmp_path / "a", 30.0))
    router_b = RouterApp(
        _router_config(sims, kafka_broker, topics, tmp_path / "b", 30.0), registry=CollectorRegistry()
    )
    await router_a.start()
    await router_b.start()
    consumers = Consumers(kafka_broker, topics)
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{router_a.port}") as ch_a,
            grpc.aio.insecure_channel(f"127.0.0.1:{router_b.port}") as ch_b,
        ):
            yield Pair(pb_grpc.RouterServiceStub(ch_a), pb_grpc.RouterServiceStub(ch_b), router_a, router_b)
    finally:
        await consumers.stop()
        await router_b.stop(grace_s=1)
        await router_a.stop(grace_s=1)


async def test_b_demotes_a_provider_a_opened_its_breaker_on_despite_earlier_successes(
    pair: Pair, sims: Sims
) -> None:
    pinned = chat(model=pb.ModelSelector(model="m1"))
    for _ in range(60):  # the history that diluted the window score
        response = await pair.a.Complete(pb.CompleteRequest(chat=pinned))
        assert response.routing.provider == "sim-a"

    await sims.set_profile("sim-a", error_rate=1.0)
    a_engine = pair.router_a.engine
    failures = 0
    while a_engine.live.breaker_state(FAILING, time.monotonic()) is not BreakerState.OPEN:
        response = await pair.a.Complete(pb.CompleteRequest(chat=pinned))  # falls back, answers
        assert response.routing.attempts[0].provider == "sim-a"
        failures += 1
        assert failures <= 10, "A's default breaker should open after a few failures"

    b_engine = pair.router_b.engine
    assert b_engine.fleet is not None
    fleet = b_engine.fleet

    async def b_demotes() -> bool:
        return fleet.demoted.get(FAILING, 1.0) == fleet.config.min_share

    waited = await _wait_for(b_demotes, DEMOTION_BOUND_S)
    health = fleet.view.health[FAILING]
    assert health.failing and len(health.open_breakers) == 1, health
    assert health.judged >= 60  # the successes are in the window: the cap did the demoting
    # B never sent anything to sim-a: its own state has nothing against it.
    assert b_engine.live.error_rate(FAILING, time.monotonic()) == 0.0
    print(f"A's breaker opened after {failures} failures; B demoted it {waited:.2f}s later")
