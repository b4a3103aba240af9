"""Health and quality consumers end to end on the real broker, run through `serve` as a process would."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict

from prometheus_client import CollectorRegistry

from consumers.jobs import JOBS, JobOptions
from consumers.main import serve
from consumers.metrics import ConsumerMetrics
from consumers.runner import ConsumerRunner, RunnerConfig
from router_contract.readers.health import fleet_health
from router_contract.readers.quality import fleet_quality
from router_service.embedded.broker import EmbeddedBroker
from router_service.telemetry import events as ev
from tests.consumers import helpers
from tests.consumers.conftest import FAST_GROUPS
from tests.telemetry.helpers import eventually


def _expected(events: list[ev.TelemetryEvent]) -> tuple[Counter[str], dict[str, list[float]]]:
    attempts: Counter[str] = Counter()
    by_request: dict[str, dict[str, str]] = defaultdict(dict)
    scores: dict[str, list[float]] = defaultdict(list)
    for event in events:
        body = event.body
        request = by_request[event.context.request_id]
        if isinstance(body, ev.AttemptEvent):
            attempts[f"{body.attempt.provider}/{body.attempt.model}"] += 1
        elif isinstance(body, ev.DecisionEvent):
            request["task"] = body.decision.task_type.name.lower()
        elif isinstance(body, ev.CompletionEvent):
            request["model"] = body.model
        elif isinstance(body, ev.FeedbackEvent):
            scores[f"model={request['model']},task={request['task']}"].append(body.score)
    return attempts, scores


async def test_health_and_quality_snapshots_match_the_events(kafka_broker: EmbeddedBroker) -> None:
    bootstrap = kafka_broker.bootstrap
    input_topic = helpers.unique("events")
    topics = {"health": helpers.unique("health"), "quality": helpers.unique("quality")}
    for topic in topics.values():
        await helpers.create_topics(bootstrap, input_topic, 3, topic)
    events = helpers.mixed_events(300, seed=11, now_s=time.time())
    written = await helpers.publish(bootstrap, input_topic, events, encoding="protobuf")

    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    runners = [
        ConsumerRunner(
            # Every scorer counts fully (a share of 1 caps nobody): the plain means are checkable.
            JOBS[name].configured(JobOptions(quality_max_scorer_share=1.0)),
            RunnerConfig(
                input_topic=input_topic,
                snapshot_topic=topics[name],
                group_id=helpers.unique("g"),
                snapshot_interval_s=0.3,
                poll_timeout_ms=100,
                **FAST_GROUPS,
            ),
            helpers.options(bootstrap),
            metrics,
        )
        for name in topics
    ]
    serving = asyncio.create_task(serve(runners, handle_signals=False))
    total = sum(written.values())
    await eventually(
        lambda: all(
            registry.get_sample_value("llmrouter_consumer_records_total", {"consumer": name}) == total
            for name in topics
        ),
        30,
        "both consumers to read every record",
    )
    for runner in runners:
        runner.stop()
    await asyncio.wait_for(serving, 30)

    attempts, scores = _expected(events)
    health = fleet_health(await helpers.read_latest(bootstrap, topics["health"]))
    assert {key: view["attempts"] for key, view in health.items()} == dict(attempts)
    assert all(view["health_score"] == 1.0 and view["error_rate"] == 0.0 for view in health.values())
    quality = fleet_quality(await helpers.read_latest(bootstrap, topics["quality"]))
    assert {key: view["count"] for key, view in quality.items()} == {k: len(v) for k, v in scores.items()}
    for key, view in quality.items():
        assert abs(view["mean_score"] - sum(scores[key]) / len(scores[key])) < 1e-6
