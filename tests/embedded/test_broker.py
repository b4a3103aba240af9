from __future__ import annotations

from pathlib import Path

import pytest

from router_service.embedded.broker import BIN_ENV_VAR, BrokerStartError, EmbeddedBroker, _answers_kafka
from router_service.telemetry.kafka_client import ensure_topics


async def test_restart_comes_back_empty_on_the_same_port(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    await broker.start()
    await broker.start()  # idempotent while running
    port = broker.port
    assert broker.bootstrap == f"127.0.0.1:{port}"
    await ensure_topics(broker.bootstrap, {"drill.topic": 1})

    await broker.kill()
    assert not broker.running
    assert not await _answers_kafka(port)
    await broker.restart()

    assert broker.running and broker.port == port
    assert await _answers_kafka(port)
    await ensure_topics(broker.bootstrap, {"drill.topic": 1})  # memory storage: created again
    await broker.stop()
    await broker.stop()  # idempotent


async def test_a_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BIN_ENV_VAR, str(tmp_path / "no-such-tansu"))
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log", startup_timeout_s=1.0)

    with pytest.raises(BrokerStartError, match="no-such-tansu"):
        await broker.start()
