"""The feedback loop end to end: router A's events -> consumers -> snapshot topics -> router B.

Real parts only: two routers over loopback gRPC, simulated providers over HTTP, the embedded
Kafka-protocol broker, and the health and quality consumers (in this process, on their own
topics). Router B sends nothing upstream while A sees the fault, so whatever moves B's traffic
can only have come through the snapshots.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from consumers.jobs import job_named
from consumers.kafka import KafkaOptions
from consumers.metrics import ConsumerMetrics
from consumers.runner import ConsumerRunner, RunnerConfig
from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_contract.cost_totals import usd_text
from router_service import routerctl
from router_service.app import RouterApp
from router_service.embedded.broker import EmbeddedBroker
from router_service.fleet.config import FleetConfig
from router_service.fleet.subscriber import read_fleet_view
from router_service.fleet.view import Topic
from router_service.settings import parse_config
from tests.integration.conftest import Sims, chat, router_config_dict
from tests.integration.test_events import events_config

pytestmark = pytest.mark.timeout(120)

FAILING = "sim-a/m1"  # m1 is listed first and the policy's strategy is priority: it leads every request
# Once demoted (score at or below floor_score) it leads only min_share (2%) of them, drawn at random.
# So traffic checks take 300 routes and allow 20 leads: expected 6, and more than 20 has a
# probability of 1e-6 (binomial), while an undemoted m1 would lead all 300. Whether B demotes it
# at all is read exactly from B's fleet signals (`_b_share`).
DEMOTED_LEADS_MAX = 20


@dataclass
class Fleet:
    a: pb_grpc.RouterServiceStub
    b: pb_grpc.RouterServiceStub
    router_b: RouterApp
    bootstrap: str
    topics: dict[str, str]
    consumers: Consumers


def _name(kind: str) -> str:
    return f"test.fleet.{kind}.{uuid.uuid4().hex[:8]}"


def _router_config(
    sims: Sims, broker: EmbeddedBroker, topics: dict[str, str], spool: Path, stale_after_s: float, **res: Any
) -> Any:
    config = router_config_dict(sims)
    config["events"] = events_config(broker, topics["events"], spool)
    config["fleet"] = {
        "health_topic": topics["health"],
        "quality_topic": topics["quality"],
        "costs_topic": topics["costs"],
        "stale_after_s": stale_after_s,
        "refresh_interval_s": 0.2,
        "min_attempts": 5,
    }
    config["resilience"].update(res)
    for model, prior in zip(config["models"], (0.9, 0.8, 0.8), strict=True):
        model["quality"] = {"chat": prior}
    config["policies"]["best"] = {"models": ["m1", "m2", "m3"], "strategy": "quality", "min_quality": 0.6}
    return parse_config(config)


class Consumers:
    """The health, quality and costs jobs, each a ConsumerRunner on its own topics, in this process."""

    def __init__(self, broker: EmbeddedBroker, topics: dict[str, str]) -> None:
        metrics = ConsumerMetrics(CollectorRegistry())
        kafka = KafkaOptions(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
        self.runners = [
            ConsumerRunner(
                job_named(kind),
                RunnerConfig(
                    input_topic=topics["events"],
                    snapshot_topic=topics[kind],
                    group_id=_name(f"group-{kind}"),
                    snapshot_interval_s=0.5,
                    create_topics=True,
                ),
                kafka,
                metrics,
            )
            for kind in ("health", "quality", "costs")
        ]
        self._tasks = [asyncio.create_task(runner.run()) for runner in self.runners]

    async def stop(self) -> None:
        for runner in self.runners:
            runner.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def fleet(
    sims: Sims, kafka_broker: EmbeddedBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Fleet]:
    """Parametrize indirectly with a `stale_after_s` (default 30)."""
    stale_after_s = getattr(request, "param", 30.0)
    topics = {kind: _name(kind) for kind in ("events", "health", "quality", "costs")}
    # A's own breaker is lax (it keeps trying the failing provider, falling back each time), so
    # that one instance produces the evidence a fleet of many would; B keeps the defaults.
    router_a = RouterApp(
        _router_config(
            sims, kafka_broker, topics, tmp_path / "a", stale_after_s, breaker={"allowed_fails": 1000}
        )
    )
    router_b = RouterApp(
        _router_config(sims, kafka_broker, topics, tmp_path / "b", stale_after_s),
        registry=CollectorRegistry(),
    )
    await router_a.start()  # creates the events topic, which the consumers need
    await router_b.start()
    consumers = Consumers(kafka_broker, topics)
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{router_a.port}") as ch_a,
            grpc.aio.insecure_channel(f"127.0.0.1:{router_b.port}") as ch_b,
        ):
            yield Fleet(
                pb_grpc.RouterServiceStub(ch_a),
                pb_grpc.RouterServiceStub(ch_b),
                router_b,
                kafka_broker.bootstrap,
                topics,
                consumers,
            )
    finally:
        await consumers.stop()
        await router_b.stop(grace_s=1)
        await router_a.stop(grace_s=1)


async def _first_choices(stub: pb_grpc.RouterServiceStub, n: int = 90, **hints: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    request = chat(routing=pb.RoutingHints(task_type=pb.TASK_TYPE_CHAT, **hints))
    for _ in range(n):
        response = await stub.Route(pb.RouteRequest(chat=request))
        counts[response.decision.chosen] = counts.get(response.decision.chosen, 0) + 1
    return counts


async def _wait_for(condition: Callable[[], Any], timeout_s: float) -> float:
    """Seconds until the async `condition` holds; fails the test after `timeout_s`."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < timeout_s, "the fleet view did not change in time"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_b_moves_traffic_off_a_provider_only_a_saw_failing(
    fleet: Fleet, sims: Sims, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _first_choices(fleet.b) == {FAILING: 90}

    spent_nanos = await _fail_through_a(fleet, sims)

    await _wait_for(_b_demotes_the_failing_deployment(fleet), 30)
    after = await _first_choices(fleet.b, 300)
    assert after.get(FAILING, 0) <= DEMOTED_LEADS_MAX, after
    # B never called sim-a during the fault: all it knows came from the fleet view.
    assert fleet.router_b.engine.live.error_rate(FAILING, time.monotonic()) == 0.0
    # Demoted, not excluded: it is still a fallback, and B's own breaker has nothing against it.
    decision = (await fleet.b.Route(pb.RouteRequest(chat=chat()))).decision
    assert all(c.eligible for c in decision.candidates)
    assert FAILING in [decision.chosen, *decision.fallbacks]

    # The same fleet view for people: routerctl reads the snapshot topics.
    health = await _routerctl(
        capsys, "health", "--bootstrap", fleet.bootstrap, "--topic", fleet.topics["health"]
    )
    row = next(line.split() for line in health.splitlines() if line.startswith(FAILING))
    assert float(row[1]) < 0.5 and row[3] == "20"  # score, attempts: A's 20 failures
    day = int(time.time() // 86_400) * 86_400

    async def costs_arrived() -> bool:
        config = FleetConfig(health_topic="", quality_topic="", costs_topic=fleet.topics["costs"])
        totals = (await read_fleet_view(fleet.bootstrap, config)).cost_totals("day", day)
        return "total=all" in totals and totals["total=all"].requests == 20

    await _wait_for(costs_arrived, 30)
    costs = await _routerctl(
        capsys, "costs", "--window", "day", "--bootstrap", fleet.bootstrap, "--topic", fleet.topics["costs"]
    )
    total = next(line.split() for line in costs.splitlines() if line.startswith("total=all"))
    assert total[1] == "20" and total[2] == usd_text(spent_nanos)  # exact, to the nano-dollar


async def _routerctl(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert await asyncio.to_thread(routerctl.main, list(argv)) == 0
    return capsys.readouterr().out


async def test_low_feedback_scores_move_quality_aware_traffic_off_a_model(fleet: Fleet) -> None:
    best = await _first_choices(fleet.b, 20, policy="best")
    assert best == {FAILING: 20}  # m1 has the best prior (0.9 > 0.8)

    request = chat(routing=pb.RoutingHints(policy="best", task_type=pb.TASK_TYPE_CHAT))
    for _ in range(12):  # through A; each answered by m1, then scored 0 by the caller
        response = await fleet.a.Complete(pb.CompleteRequest(chat=request))
        assert response.routing.model == "m1"
        await fleet.a.Feedback(pb.FeedbackRequest(request_id=response.routing.request_id, score=0.0))

    # B may leave m1 after only some of the scores reached the snapshot; wait for all 12.
    # 12 scores of 0: confidence 12/22, so quality 0.9 * 10/22 = 0.41, below the policy's 0.6 floor.
    async def b_counts_all_scores() -> bool:
        decision = (await fleet.b.Route(pb.RouteRequest(chat=request))).decision
        m1 = next(c for c in decision.candidates if c.model == "m1")
        return not m1.eligible and "quality 0.41" in m1.exclusion_reason

    await _wait_for(b_counts_all_scores, 30)
    assert FAILING not in await _first_choices(fleet.b, 20, policy="best")


async def _fail_through_a(fleet: Fleet, sims: Sims) -> int:
    """sim-a fails every call; A pins m1, so each call fails there first, then falls back and
    succeeds. Returns what A's callers were charged, in nano-USD."""
    await sims.set_profile("sim-a", error_rate=1.0)
    pinned = chat(model=pb.ModelSelector(model="m1"))
    spent_nanos = 0
    for _ in range(20):
        response = await fleet.a.Complete(pb.CompleteRequest(chat=pinned))
        assert response.routing.attempts[0].provider == "sim-a" and response.routing.provider != "sim-a"
        spent_nanos += response.cost.units * 10**9 + response.cost.nanos
    return spent_nanos


def _stale_gauge(router: RouterApp) -> float | None:
    # B has its own registry, and so its own fleet metrics.
    return router.registry.get_sample_value("llmrouter_fleet_view_stale", {"topic": "health"})


def _b_fleet_health(fleet: Fleet) -> dict[str, object]:
    assert fleet.router_b.engine.fleet is not None
    return dict(fleet.router_b.engine.fleet.view.health)


def _b_share(fleet: Fleet) -> float:
    """The share of the requests B lets the failing deployment lead (1.0: not demoted)."""
    assert fleet.router_b.engine.fleet is not None
    return fleet.router_b.engine.fleet.demoted.get(FAILING, 1.0)


def _b_demotes_the_failing_deployment(fleet: Fleet) -> Callable[[], Any]:
    min_share = FleetConfig(health_topic="", quality_topic="", costs_topic="").min_share

    async def demoted() -> bool:
        return _b_share(fleet) == min_share

    return demoted


def _b_health_view_is_stale(fleet: Fleet) -> bool:
    assert fleet.router_b.engine.fleet is not None
    return Topic.HEALTH in fleet.router_b.engine.fleet.view.stale


# Short, to keep the test short (it sleeps twice this, then waits it out); still six of the
# consumers' 0.5 s snapshot intervals, so a loaded CI machine's stalls do not make it stale.
STALE_AFTER_S = 3.0


@pytest.mark.parametrize("fleet", [STALE_AFTER_S], indirect=True)
async def test_when_the_consumers_stop_the_view_goes_stale_and_b_routes_on_local_state(
    fleet: Fleet, sims: Sims
) -> None:
    await _fail_through_a(fleet, sims)
    demoted = _b_demotes_the_failing_deployment(fleet)
    await _wait_for(demoted, 30)
    # Idle consumers keep writing checkpoints: the view stays fresh well past stale_after_s.
    await asyncio.sleep(2 * STALE_AFTER_S)
    assert not _b_health_view_is_stale(fleet), "idle consumers' heartbeats should keep B's view fresh"
    assert _stale_gauge(fleet.router_b) == 0
    assert await demoted(), f"B's fleet health of {FAILING}: {_b_fleet_health(fleet).get(FAILING)}"
    choices = await _first_choices(fleet.b, 300)
    assert choices.get(FAILING, 0) <= DEMOTED_LEADS_MAX, choices

    await fleet.consumers.stop()

    async def stale() -> bool:
        return _b_health_view_is_stale(fleet) and _stale_gauge(fleet.router_b) == 1

    await _wait_for(stale, 15)
    # Local state only: B has seen no failure of sim-a, so it leads every request again.
    assert _b_share(fleet) == 1.0
    assert await _first_choices(fleet.b, 90) == {FAILING: 90}
