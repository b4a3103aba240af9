"""PublisherConfig: every knob of the Kafka event publisher, frozen and checked at startup."""

from __future__ import annotations

import dataclasses

from aiokafka.codec import has_gzip, has_lz4, has_snappy, has_zstd

from router_service.telemetry import event_codec
from router_service.telemetry.event_codec import Encoding
from router_service.telemetry.kafka_client import KafkaSecurity
from router_service.telemetry.pii import DEFAULT_PII, PII_PATTERNS

DEFAULT_TOPIC = "llmrouter.events.v1"
DEFAULT_LINGER_MS = 150  # see PublisherConfig.linger_ms
_COMPRESSION_CHECKS = {"gzip": has_gzip, "snappy": has_snappy, "lz4": has_lz4, "zstd": has_zstd}


@dataclasses.dataclass(frozen=True, slots=True)
class PublisherConfig:
    """Defaults suit a local broker; production sets bootstrap_servers, security and spool_dir.

    Against the embedded Tansu broker set enable_idempotence=False (see publisher.py).
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = DEFAULT_TOPIC
    encoding: Encoding = "json"
    queue_max: int = 10_000  # events held in memory before spilling to the spool
    # One directory per process: the spool locks it. With --workers N, give each worker its own
    # (e.g. ".../worker-<index>") so a restarted worker replays what its predecessor left.
    spool_dir: str = "var/spool/events"
    spool_max_bytes: int = 256 << 20
    spool_segment_bytes: int = 8 << 20
    # Write every event to the spool (a write-ahead log) in publish(), before its call answers,
    # and trim it as the broker acks: a router killed (SIGKILL, OOM) with events still lingering
    # replays them at its next start instead of losing them. One small write per event; see
    # publisher.py "Durability". False: events live in memory until the broker acks them.
    durable: bool = True
    # gzip works out of the box; snappy, lz4 and zstd need the cramjam package (aiokafka[zstd]).
    compression_type: str = "zstd"  # zstd | lz4 | gzip | snappy | none (cramjam provides zstd, lz4, snappy)
    # How long the sender gathers events into one round before sending them. A round's fixed cost
    # (loop, producer, request, ack; about 0.8 ms here) dwarfs an event's, so longer rounds cost
    # the router less CPU per event; events reach Kafka up to this much later, which nothing
    # downstream notices (consumers publish snapshots every second or more). 5 ms cost 3-4x the
    # CPU per event of 50 ms at 300-1500 events/s (bench/event_publisher.py, paced loads); 150 ms
    # cost 25-30% less than 50 ms at 1500 events/s (~500 requests/s) and ~45% less at 300/s.
    # A busy router fills `send_batch_max` sooner and sends then, so the linger only bounds how
    # long a quiet router's events wait.
    linger_ms: int = DEFAULT_LINGER_MS
    max_batch_bytes: int = 256 << 10  # aiokafka max_batch_size, per partition
    max_request_bytes: int = 1 << 20  # largest record we send; bigger ones are dropped and counted
    send_batch_max: int = 500  # events per sender round trip
    request_timeout_ms: int = 10_000  # how long a broker may stay silent before we spool
    probe_interval_s: float = 2.0  # how often to retry an unreachable broker
    enable_idempotence: bool = True
    client_id: str = "llmrouter-router"
    router_instance: str = ""  # "" -> "<hostname>-<pid>"
    security: KafkaSecurity = dataclasses.field(default_factory=KafkaSecurity)
    include_content: bool = False  # put (redacted) prompt/answer text into completion events
    # Redaction of content, caller tags and error messages: the built-in secret shapes always,
    # these built-in PII patterns (names in telemetry/pii.py; default all), then extra regexes.
    redact_pii: tuple[str, ...] = DEFAULT_PII
    redact_patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.encoding not in event_codec.ENCODINGS:
            raise ValueError(f"encoding must be one of {event_codec.ENCODINGS}, not {self.encoding!r}")
        unknown_pii = sorted(set(self.redact_pii) - PII_PATTERNS.keys())
        if unknown_pii:
            raise ValueError(f"unknown PII pattern names {unknown_pii}; known: {sorted(PII_PATTERNS)}")
        if self.queue_max <= 0 or self.send_batch_max <= 0:
            raise ValueError("queue_max and send_batch_max must be positive")
        if self.compression_type != "none":
            check = _COMPRESSION_CHECKS.get(self.compression_type)
            if check is None:
                raise ValueError(f"unknown compression_type {self.compression_type!r}")
            if not check():
                raise ValueError(
                    f"compression_type {self.compression_type!r} needs the cramjam package "
                    "(pip install 'aiokafka[zstd]'); gzip needs nothing extra"
                )

    @property
    def delivery_timeout_s(self) -> float:
        # aiokafka expires a batch after request_timeout_ms; allow it that plus its retry rounds.
        return self.request_timeout_ms / 1000 * 1.5
