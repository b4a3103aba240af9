"""Kafka connection options shared by producers, consumers and admin clients, and topic helpers.

Topics are never created implicitly: production clusters are expected to have them (with the
partition count and retention operators chose) and auto-creation disabled. `ensure_topics` is
for dev, tests and the embedded stack only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context

_TOPIC_ALREADY_EXISTS = 36  # Kafka error code; an idempotent create treats it as success


class TopicMissingError(Exception):
    """The topic does not exist, and we do not create topics implicitly."""


@dataclasses.dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """TLS/SASL options passed through to aiokafka (defaults: plaintext, no auth)."""

    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = "PLAIN"  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = dataclasses.field(default=None, repr=False)
    ssl_cafile: str | None = None  # CA bundle to verify brokers; None: the system store

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer/Consumer/AdminClient."""
        kwargs: dict[str, Any] = {
            "security_protocol": self.security_protocol,
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
            "sasl_plain_password": self.sasl_plain_password,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return kwargs


async def ensure_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    *,
    replication_factor: int = 1,
    security: KafkaSecurity = KafkaSecurity(),
    request_timeout_ms: int = 10_000,
) -> None:
    """Create the missing topics of {name: partitions} (dev and tests; existing ones are kept)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=request_timeout_ms,
        **security.client_kwargs(),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, partitions, replication_factor)
            for name, partitions in topics.items()
            if name not in existing
        ]
        if missing:
            _raise_for_errors(await admin.create_topics(missing))
    finally:
        await admin.close()


def _raise_for_errors(response: Any) -> None:
    for topic, code, message in (error[:3] for error in response.topic_errors):
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            raise KafkaError(f"creating topic {topic!r} failed: error {code} {message or ''}".strip())


async def require_topic(producer: Any, topic: str) -> None:
    """Raise TopicMissingError unless the cluster has `topic`.

    Asks for the metadata of all topics: a metadata request naming the topic would let a broker
    with auto-creation enabled create it, which is exactly what we must not do.
    """
    metadata = await producer.client.fetch_all_metadata()
    if topic not in metadata.topics():
        raise TopicMissingError(
            f"topic {topic!r} does not exist; create it (router-service never creates topics implicitly)"
        )
