from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from router_service.embedded.api_versions import strip_default_tags
from router_service.embedded.broker import (
    BIN_ENV_VAR,
    BrokerStartError,
    EmbeddedBroker,
    answers_kafka,
    port_if_free,
)
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
    assert not await answers_kafka(port)
    await broker.restart()

    assert broker.running and broker.port == port
    assert await answers_kafka(port)
    await ensure_topics(broker.bootstrap, {"drill.topic": 1})  # memory storage: created again
    await broker.stop()
    await broker.stop()  # idempotent


async def test_a_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BIN_ENV_VAR, str(tmp_path / "no-such-tansu"))
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log", startup_timeout_s=1.0)

    with pytest.raises(BrokerStartError, match="no-such-tansu"):
        await broker.start()


async def test_api_versions_v3_answers_carry_no_default_tags(kafka_broker: EmbeddedBroker) -> None:
    """What librdkafka < 2.2 (Debian's and Ubuntu's kcat) needs: Tansu alone sends four tags."""
    reader, writer = await asyncio.open_connection("127.0.0.1", kafka_broker.port)
    client_id, software, version = b"kcat", b"librdkafka", b"2.0.2"
    # Request header v2 (client_id, empty tags), then ApiVersions v3's compact strings and tags.
    header = struct.pack(">hhih", 18, 3, 7, len(client_id)) + client_id + b"\x00"
    request = header + bytes([len(software) + 1]) + software + bytes([len(version) + 1]) + version + b"\x00"
    writer.write(struct.pack(">i", len(request)) + request)
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    response = await reader.readexactly(size)
    writer.close()

    assert response[:4] == struct.pack(">i", 7)
    assert strip_default_tags(response[4:]) == response[4:]  # nothing left to strip
    assert response.endswith(b"\x00")  # throttle_time_ms, then an empty tag section


def test_port_if_free_takes_the_preferred_port_only_when_it_can_be_bound() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        other = port_if_free(taken)
        assert other != taken
    assert port_if_free(taken) == taken  # released: free again


_OWNER = """
import asyncio, sys
from router_service.embedded.broker import EmbeddedBroker

async def main():
    broker = EmbeddedBroker(log_path=sys.argv[1])
    await broker.start()
    print(broker.port, *broker.pids, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_the_relay_exits_when_its_owner_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed `router-service up` must not leave the public port held by a relay."""
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path / "tansu.log")], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    port, tansu_pid, relay_pid = (int(field) for field in owner.stdout.readline().split())
    owner.kill()
    owner.wait()
    try:
        deadline = time.monotonic() + 10  # the relay checks for its parent every 0.5 s
        while not _gone(relay_pid):
            assert time.monotonic() < deadline, "the relay outlived its owner by 10 s"
            time.sleep(0.05)
        assert not asyncio.run(answers_kafka(port))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(tansu_pid, signal.SIGKILL)  # Tansu itself is orphaned: not ours to fix here


def _gone(pid: int) -> bool:
    """Exited (reaped, or a zombie its new parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True
