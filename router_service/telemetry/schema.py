"""The `metrics:`, `tracing:` and `events:` config sections (pydantic, at the edge).

Every field is documented with its default in config/example.yaml; `settings.py` converts them
into the runtime objects (PublisherConfig, the tracer's settings, the metrics listener).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator

from router_service.schema_base import StrictModel
from router_service.telemetry.pii import DEFAULT_PII
from router_service.telemetry.publisher_config import DEFAULT_LINGER_MS, DEFAULT_TOPIC


class MetricsConfig(StrictModel):
    # HOST:PORT for the Prometheus /metrics endpoint; empty disables it.
    listen: str = "127.0.0.1:9464"


class TracingConfig(StrictModel):
    """OpenTelemetry traces (README "Tracing"): a SERVER span per call, a CLIENT span per upstream
    attempt with the GenAI semantic conventions. Off by default: no tracing code on the call path."""

    enabled: bool = False
    exporter: Literal["otlp", "console"] = "otlp"  # otlp: OTLP/HTTP protobuf; console: stdout (debugging)
    # OTLP/HTTP traces URL; empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT,
    # else http://localhost:4318/v1/traces (the exporter's own defaults).
    endpoint: str = ""
    # One export's deadline, retries included. It also bounds what an unreachable collector adds
    # to shutdown (the last batch is exported then): about twice this at most.
    export_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    # Share of new traces sampled; a caller's sampled/unsampled decision (traceparent) is kept.
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0
    service_name: str = "llm-router"


class KafkaSecurityConfig(StrictModel):
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None


# The names of telemetry/pii.py's PII_PATTERNS (a test keeps the two equal).
PiiName = Literal["email", "card_number", "phone", "phone_national", "iban", "us_ssn", "uk_nino"]


class EventsConfig(StrictModel):
    """Telemetry events to Kafka. Empty bootstrap_servers: no events (metrics still work)."""

    bootstrap_servers: str = ""
    topic: Annotated[str, Field(pattern=r"^[a-zA-Z0-9._-]{1,249}$")] = DEFAULT_TOPIC
    encoding: Literal["json", "protobuf"] = "json"
    # zstd: measured cheapest per event here (bench/event_publisher.py), and Kafka-native since 2.1.
    compression: Literal["zstd", "lz4", "gzip", "snappy", "none"] = "zstd"
    queue_max: Annotated[int, Field(ge=1)] = 10_000
    # How long events gather before one send: longer rounds cost the router less CPU per event,
    # and events reach Kafka up to this much later (measured in PublisherConfig.linger_ms).
    linger_ms: Annotated[int, Field(ge=0, le=10_000)] = DEFAULT_LINGER_MS
    spool_dir: str = "var/spool/events"
    spool_max_bytes: Annotated[int, Field(ge=1 << 20)] = 256 << 20
    # Every event written to the spool before its call answers (a write-ahead log, trimmed as the
    # broker acks): a killed router replays them at its next start (PublisherConfig.durable).
    durable: bool = True
    # Kafka's idempotent producer; the embedded Tansu broker does not support it (see up).
    enable_idempotence: bool = True
    include_content: bool = False  # prompts and answers in completion events (redacted)
    # Built-in PII patterns (telemetry/pii.py) redacted from content, caller tags and error
    # messages, on top of the secret shapes (always); all by default, list fewer to turn some off.
    redact_pii: list[PiiName] = list(DEFAULT_PII)  # type: ignore[arg-type]
    redact_patterns: list[str] = []  # extra regexes, applied after the built-in ones
    # Dev and tests only: create the topic with this many partitions at start. Production topics
    # are created by operators (auto-create stays off).
    create_topic_partitions: Annotated[int, Field(ge=1)] | None = None
    security: KafkaSecurityConfig = KafkaSecurityConfig()

    @field_validator("redact_patterns")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        return value
