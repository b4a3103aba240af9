"""Trusted feedback end to end (issue 13): the spam scenario with the consumers running.

Real parts only: a router with `auth.mode: required` over a real key file, simulated providers
over HTTP, the embedded Kafka-protocol broker, and the quality consumer (in this process) whose
snapshots the same router's fleet view reads. Organic feedback from many keys establishes the
premium model's fleet quality; then one key of the same team sends 300 `Feedback(score=0)` for
one request id and 300 more spread over 30 requests of its own: the fleet quality the router
sees moves by less than 0.05. A key of another team is refused and changes nothing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
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
from router_contract.readers.quality import fleet_quality
from router_service.app import RouterApp
from router_service.composition import feedback_publisher
from router_service.domain import TaskType
from router_service.embedded.broker import EmbeddedBroker
from router_service.fleet.view import QualityStats
from router_service.identity.model import UNRESTRICTED, Identity, Scope
from router_service.settings import parse_config
from router_service.telemetry.events import FeedbackEvent, TelemetryEvent
from tests.consumers.helpers import read_latest
from tests.integration.conftest import Sims, chat, router_config_dict
from tests.integration.test_events import events_config
from tests.integration.test_keys import Keys, bearer, failure

pytestmark = pytest.mark.timeout(120)

ORGANIC_KEYS = 24
ORGANIC_REQUESTS_EACH = 2
ORGANIC_SCORE = 0.9
SPAM_REQUESTS = 30
SCORER = frozenset({Scope.COMPLETE, Scope.FEEDBACK})
PREMIUM = "m1"
DIMENSION = f"model={PREMIUM},task=chat"


@dataclass
class Setup:
    stub: pb_grpc.RouterServiceStub
    router: RouterApp
    keys: Keys
    bootstrap: str
    quality_topic: str
    registry: CollectorRegistry


def _name(kind: str) -> str:
    return f"test.trust.{kind}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def setup(sims: Sims, kafka_broker: EmbeddedBroker, tmp_path: Path) -> AsyncIterator[Setup]:
    keys = Keys(tmp_path / "keys.yaml")
    await keys.admin.start()
    for i in range(ORGANIC_KEYS):
        await keys.create(f"k_user{i}", team="search", customer="acme", scopes=SCORER)
    await keys.create("k_spam", team="search", customer="acme", scopes=SCORER)  # a team mate gone bad
    await keys.create("k_ads", team="ads", customer="acme", scopes=SCORER)
    topics = {kind: _name(kind) for kind in ("events", "health", "quality", "costs")}
    config = router_config_dict(sims)
    config["auth"] = {"mode": "required", "keys_file": str(keys.path), "keys_file_poll_s": 0.05}
    config["events"] = events_config(kafka_broker, topics["events"], tmp_path / "spool")
    config["fleet"] = {
        "health_topic": topics["health"],
        "quality_topic": topics["quality"],
        "costs_topic": topics["costs"],
        "stale_after_s": 60,
        "refresh_interval_s": 0.2,
    }
    config["models"][0]["quality"] = {"chat": 0.9}
    router = RouterApp(parse_config(config))
    await router.start()  # creates the events topic the consumer reads
    registry = CollectorRegistry()
    runner = ConsumerRunner(
        job_named("quality"),  # the default max_scorer_share (0.05)
        RunnerConfig(
            input_topic=topics["events"],
            snapshot_topic=topics["quality"],
            group_id=_name("group"),
            snapshot_interval_s=0.5,
            create_topics=True,
        ),
        KafkaOptions(bootstrap_servers=kafka_broker.bootstrap, enable_idempotence=False),
        ConsumerMetrics(registry),
    )
    consuming = asyncio.create_task(runner.run())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{router.port}") as channel:
            yield Setup(
                pb_grpc.RouterServiceStub(channel),
                router,
                keys,
                kafka_broker.bootstrap,
                topics["quality"],
                registry,
            )
    finally:
        runner.stop()
        await asyncio.gather(consuming, return_exceptions=True)
        await router.stop(grace_s=1)


async def _complete(setup: Setup, key: str) -> str:
    """A chat request pinned to the premium model, made with `key`; its request id."""
    request = chat(
        model=pb.ModelSelector(model=PREMIUM), routing=pb.RoutingHints(task_type=pb.TASK_TYPE_CHAT)
    )
    response = await setup.stub.Complete(
        pb.CompleteRequest(request_id=uuid.uuid4().hex, chat=request),
        metadata=bearer(setup.keys.secrets[key]),
    )
    assert response.routing.model == PREMIUM
    return response.routing.request_id


async def _feedback(setup: Setup, key: str, request_id: str, score: float) -> None:
    await setup.stub.Feedback(
        pb.FeedbackRequest(request_id=request_id, score=score), metadata=bearer(setup.keys.secrets[key])
    )


async def _wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < timeout_s, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


def _router_sees(setup: Setup) -> QualityStats | None:
    engine = setup.router.engine
    assert engine.fleet is not None
    return engine.fleet.view.quality.get((PREMIUM, TaskType.CHAT))


async def _settled(setup: Setup, raw_count: int) -> QualityStats:
    """Once the consumer has counted `raw_count` scores and the router's view shows that state."""
    snapshot: dict[str, Any] = {}

    async def consumed() -> bool:
        snapshot.update(
            fleet_quality(await read_latest(setup.bootstrap, setup.quality_topic)).get(DIMENSION, {})
        )
        return snapshot.get("count") == raw_count

    await _wait_for(consumed, 30, f"{raw_count} scores in the quality snapshots")

    async def seen() -> bool:
        stats = _router_sees(setup)
        return stats is not None and stats.mean == pytest.approx(snapshot["mean_score"])

    await _wait_for(seen, 15, "the router's fleet view to show the snapshot")
    stats = _router_sees(setup)
    assert stats is not None
    return stats


def _blended(setup: Setup) -> float:
    """The quality routing uses: the prior moved toward the fleet mean by its confidence."""
    engine = setup.router.engine
    assert engine.fleet is not None
    return engine.fleet.quality(f"sim-a/{PREMIUM}", TaskType.CHAT, 0.9)


async def test_one_key_spamming_zero_scores_moves_fleet_quality_less_than_005(setup: Setup) -> None:
    organic: list[tuple[str, str]] = []
    for i in range(ORGANIC_KEYS):
        for _ in range(ORGANIC_REQUESTS_EACH):
            organic.append((f"k_user{i}", await _complete(setup, f"k_user{i}")))
    await asyncio.gather(*(_feedback(setup, key, rid, ORGANIC_SCORE) for key, rid in organic))
    organic_count = ORGANIC_KEYS * ORGANIC_REQUESTS_EACH
    before = await _settled(setup, organic_count)
    assert before.mean == pytest.approx(ORGANIC_SCORE) and before.count == organic_count
    blended_before = _blended(setup)

    # Another team's key may not score the team's requests: refused, naming no owner.
    _, victim = organic[0]
    code, info, resources, message = await failure(
        setup.stub.Feedback(
            pb.FeedbackRequest(request_id=victim, score=0.0), metadata=bearer(setup.keys.secrets["k_ads"])
        )
    )
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert info.reason == "PERMISSION_DENIED" and info.metadata["owner"] == "another key"
    assert info.metadata["kind"] == "request" and info.metadata["name"] == victim
    assert resources and resources[0].owner == "another key"
    details = message + str(info) + str(resources)
    assert "k_user0" not in details and "search" not in details  # not whose it is

    # Wave 1: 300 zeros for one request of the team (allowed: the same team): one score in force.
    for _ in range(300):
        await _feedback(setup, "k_spam", victim, 0.0)
    wave1 = await _settled(setup, organic_count + 1)
    assert abs(wave1.mean - before.mean) < 0.05, (before, wave1)

    # Wave 2: 300 zeros over 30 requests of its own: capped at 5% of the weight.
    own = [await _complete(setup, "k_spam") for _ in range(SPAM_REQUESTS)]
    for i in range(300):
        await _feedback(setup, "k_spam", own[i % SPAM_REQUESTS], 0.0)
    after = await _settled(setup, organic_count + 1 + SPAM_REQUESTS)
    assert abs(after.mean - before.mean) < 0.05, (before, after)
    assert abs(_blended(setup) - blended_before) < 0.05
    assert after.count <= organic_count + 3  # 31 scores of one key weigh ~2.5

    # The refused feedback never reached the events: the consumer dropped nothing as not allowed.
    dropped = setup.registry.get_sample_value(
        "llmrouter_consumer_events_dropped_total", {"consumer": "quality", "reason": "not_allowed"}
    )
    assert dropped == 0


class _Collect:
    def __init__(self) -> None:
        self.events: list[TelemetryEvent] = []

    def publish(self, event: TelemetryEvent) -> None:
        self.events.append(event)


@pytest.mark.parametrize(
    ("scorer", "evaluator"),
    [
        (Identity(key_id="k_eval", team="qa", customer="acme", scopes=frozenset({Scope.EVALUATE})), True),
        (Identity(key_id="k_user", team="search", customer="acme"), False),
        (UNRESTRICTED, False),  # auth off: no scorer, no evaluator, as before keys existed
    ],
)
def test_feedback_events_name_the_scorer_and_whether_it_evaluates(scorer: Identity, evaluator: bool) -> None:
    sink = _Collect()
    feedback_publisher(sink)("req-1", 0.5, {"source": "thumbs"}, scorer)
    (event,) = sink.events
    assert (event.context.api_key_id, event.context.team, event.context.customer) == (
        scorer.key_id,
        scorer.team,
        scorer.customer,
    )
    assert isinstance(event.body, FeedbackEvent) and event.body.evaluator is evaluator
    assert event.context.request_id == "req-1" and event.body.tags == {"source": "thumbs"}
