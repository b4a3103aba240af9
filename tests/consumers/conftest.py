"""Consumer runners against the session's real broker (Tansu), with a clock the test controls."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from consumers.jobs import JOBS
from consumers.metrics import ConsumerMetrics
from consumers.runner import ConsumerRunner, RunnerConfig
from router_service.embedded.broker import EmbeddedBroker
from tests.consumers import helpers

# Tansu completes a group join ~3 s after it starts; with a rebalance timeout of 2 s (not the
# 10 s default) rebalances here take seconds instead of ~5 s each.
FAST_GROUPS = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 300, "rebalance_timeout_ms": 2000}


class ManualClock:
    """A clock that stands still until the test moves it: interval flushes (and heartbeats) happen
    only when the test says so. (A shifted time.time() would not do: the runner schedules its
    next flush one interval after its clock's now, whatever the shift.)"""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def flush_now(self) -> None:
        """Exactly one interval flush (the next loop turn), then standing still again."""
        self.now += 3600.0 * 24


@dataclasses.dataclass
class Running:
    runner: ConsumerRunner
    task: asyncio.Task[None]
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float:
        labels = {"consumer": self.runner.job.name, **labels}
        return self.registry.get_sample_value(name, labels) or 0.0

    async def stop(self) -> None:
        self.runner.stop()
        await asyncio.wait_for(self.task, 30)

    async def kill(self) -> None:
        """Cancel: no final flush, no commit, like a crash."""
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


@dataclasses.dataclass
class Setup:
    bootstrap: str
    input_topic: str
    snapshot_topic: str
    group_id: str
    partitions: int

    def config(self, **overrides: Any) -> RunnerConfig:
        fields: dict[str, Any] = {
            "input_topic": self.input_topic,
            "snapshot_topic": self.snapshot_topic,
            "group_id": self.group_id,
            "snapshot_interval_s": 0.3,
            "poll_timeout_ms": 100,
            **FAST_GROUPS,
        }
        fields.update(overrides)
        return RunnerConfig(**fields)


StartRunner = Callable[..., Running]


@pytest.fixture
async def costs_setup(kafka_broker: EmbeddedBroker) -> Setup:
    setup = Setup(
        kafka_broker.bootstrap, helpers.unique("events"), helpers.unique("costs"), helpers.unique("g"), 4
    )
    await helpers.create_topics(setup.bootstrap, setup.input_topic, setup.partitions, setup.snapshot_topic)
    return setup


@pytest.fixture
async def start_runner(kafka_broker: EmbeddedBroker) -> AsyncIterator[StartRunner]:
    """start(job_name, config, clock=...) -> Running; every runner still running is stopped at the end."""
    started: list[Running] = []

    def start(job: str, config: RunnerConfig, clock: Callable[[], float] = time.time) -> Running:
        registry = CollectorRegistry()
        runner = ConsumerRunner(
            JOBS[job], config, helpers.options(kafka_broker.bootstrap), ConsumerMetrics(registry), clock=clock
        )
        running = Running(runner, asyncio.create_task(runner.run()), registry)
        started.append(running)
        return running

    yield start
    for running in started:
        if not running.task.done():
            running.task.cancel()
        await asyncio.gather(running.task, return_exceptions=True)
