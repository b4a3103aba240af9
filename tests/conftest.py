"""Session-wide fixtures shared by every test package."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from router_service.embedded.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A real Kafka-protocol broker (Tansu, memory storage) on loopback, started once per session.

    Shared: tests isolate themselves by using their own topic names. Tests that stop or restart a
    broker start their own EmbeddedBroker instead.
    """
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("kafka") / "tansu.log")
    # Sync fixture + asyncio.run: the broker is a child process, not bound to any test's loop.
    asyncio.run(broker.start())
    yield broker
    asyncio.run(broker.stop())
