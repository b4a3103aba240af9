"""Session-wide fixtures shared by every test package."""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import Iterator

import pytest

from router_service.embedded.broker import EmbeddedBroker
from router_service.embedded.redis_server import EmbeddedRedis

# Python's full (gen 2) collections scan every object the session still holds, and a few hundred
# tests in, one takes 0.2-0.4 s (measured with gc.callbacks): a pause of the event loop that the
# timing drills, which cut an attempt at ~0.3 s, see as every provider hanging at once. Freezing
# what earlier tests left behind keeps a test's collections to its own objects; a real collection
# every _GC_EVERY tests, between tests, reclaims the rest.
_GC_EVERY = 200
_tests_started = itertools.count(1)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if next(_tests_started) % _GC_EVERY == 0:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL (`redis://127.0.0.1:<port>/0`) of a real redis-server, memory only, started once per
    session. Shared: tests isolate themselves by key prefix (or their own EmbeddedRedis)."""
    server = EmbeddedRedis(log_path=tmp_path_factory.mktemp("redis") / "redis.log")
    asyncio.run(server.start())  # a child process, not bound to any test's loop (as kafka_broker)
    yield server.url
    asyncio.run(server.stop())
