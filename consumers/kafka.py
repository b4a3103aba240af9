"""Kafka connection options for the consumer processes, and topic helpers.

These mirror router_service.telemetry.kafka_client (same fields, same meaning); consumers import
nothing of the router but the event schema and codec, so the few lines are repeated here.
Topics are never created implicitly: `ensure_topic` is for dev, tests and the embedded stack.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
_TOPIC_ALREADY_EXISTS = 36  # Kafka error code; an idempotent create treats it as success


class TopicMissingError(Exception):
    """A topic the consumer needs does not exist, and we do not create topics implicitly."""


@dataclasses.dataclass(frozen=True, slots=True)
class KafkaOptions:
    bootstrap_servers: str = DEFAULT_BOOTSTRAP
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = "PLAIN"  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = dataclasses.field(default=None, repr=False)
    ssl_cafile: str | None = None
    # The snapshot producer's idempotence. The embedded Tansu broker rejects aiokafka's
    # InitProducerId, so the embedded stack and the tests set False.
    enable_idempotence: bool = True
    # aiokafka's default. JoinGroup is sent with this timeout and the broker may hold it for the
    # whole rebalance timeout, so it must stay above the consumers' session timeout.
    request_timeout_ms: int = 40_000

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
            "sasl_plain_password": self.sasl_plain_password,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return kwargs

    @classmethod
    def from_env(cls, bootstrap: str | None = None, env: Mapping[str, str] = os.environ) -> KafkaOptions:
        """KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM,
        KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE, KAFKA_ENABLE_IDEMPOTENCE
        (true/false); an explicit `bootstrap` wins over the environment."""
        return cls(
            bootstrap_servers=bootstrap or env.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP,
            security_protocol=env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            sasl_mechanism=env.get("KAFKA_SASL_MECHANISM", "PLAIN"),
            sasl_plain_username=env.get("KAFKA_SASL_USERNAME"),
            sasl_plain_password=env.get("KAFKA_SASL_PASSWORD"),
            ssl_cafile=env.get("KAFKA_SSL_CAFILE"),
            enable_idempotence=_flag(env.get("KAFKA_ENABLE_IDEMPOTENCE", "true")),
        )


def _flag(text: str) -> bool:
    return text.strip().lower() not in ("0", "false", "no", "off")


async def topic_partitions(client: Any, topic: str) -> int:
    """Partition count of `topic`, asking for all topics' metadata.

    A metadata request naming the topic would let a broker with auto-creation on create it.
    """
    metadata = await client.fetch_all_metadata()
    partitions = metadata.partitions_for_topic(topic)
    if not partitions:
        raise TopicMissingError(f"topic {topic!r} does not exist; create it (consumers never create topics)")
    return len(partitions)


async def ensure_topic(options: KafkaOptions, topic: str, partitions: int, *, compacted: bool) -> None:
    """Create `topic` unless it exists (dev, tests and the embedded stack only)."""
    admin = AIOKafkaAdminClient(**options.client_kwargs())
    await admin.start()
    try:
        if topic in set(await admin.list_topics()):
            return
        configs = {"cleanup.policy": "compact"} if compacted else {}
        response = await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
        for name, code, message in (error[:3] for error in response.topic_errors):
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise KafkaError(f"creating topic {name!r} failed: error {code} {message or ''}".strip())
    finally:
        await admin.close()
