"""ProducerGuard: retire an aiokafka producer as soon as it loses a broker connection.

Why. When a connection breaks, aiokafka keeps the in-flight batches and resends them on its own
(every retry_backoff_ms, until request_timeout_ms) to whatever answers at the leader's address.
A broker back from a restart may have lost the topic (memory storage, a rebuilt cluster), and the
resend bypasses the publisher's check that the topic exists (`kafka_client.require_topic`). Kafka
would answer UNKNOWN_TOPIC_OR_PARTITION, or auto-create the topic with default settings; the
embedded Tansu broker even acks the batch into the missing topic, and once the topic is recreated
its offsets restart under those stale batches: the next produce fails ("UnknownError", error -1)
and records acked later are hidden from consumers. Events were lost that way.

What. After `ProducerGuard(producer, on_lost)`, any connection the producer loses without being
asked to (broken, timed out, idle-dropped, out of sync, failed to open) trips the guard, once:
every batch the producer holds fails at once (the publisher still has those records and spools
them), the producer refuses every further ProduceRequest with a non-retriable error (so aiokafka
fails the batch instead of resending it), and `on_lost` is called. The publisher then discards
the producer and sends only through a new one, which checks the topic before its first record.

aiokafka offers no hook for this: we wrap two attributes of the producer's client, `send` (public)
and `_on_connection_closed` (private), and fail batches through `_message_accumulator` (private);
both pinned at aiokafka 0.14.0. Without the first, a connection lost while idle is only noticed by
the next ProduceRequest, which then fails; without the second, held batches fail one by one as
the sender retries them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.conn import CloseReason
from aiokafka.errors import KafkaConnectionError, KafkaError, NodeNotReadyError, RequestTimedOutError
from aiokafka.protocol.produce import ProduceRequest

__all__ = ["ProducerGuard", "ProducerRetiredError", "fail_held_batches"]

log = logging.getLogger(__name__)

# What a ProduceRequest raises when the connection is gone or never came up.
_CONNECTION_ERRORS = (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError)


class ProducerRetiredError(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    """The producer lost a broker connection and sends nothing more; a new producer takes over."""

    retriable = False  # aiokafka fails the batch at once instead of resending it


class ProducerGuard:
    """Trips when the producer loses a connection; from then on the producer sends nothing."""

    def __init__(self, producer: AIOKafkaProducer, on_lost: Callable[[], None]) -> None:
        """Install on a producer that is not started yet, so that every connection is watched."""
        self._producer = producer
        self._on_lost = on_lost
        self._lost_reason: str | None = None
        client = producer.client
        self._send = client.send
        client.send = self._guarded_send
        self._closed_callback: Callable[[Any, Any], None] | None = getattr(
            client, "_on_connection_closed", None
        )
        if self._closed_callback is None:
            log.warning("aiokafka has no _on_connection_closed; idle connection losses go unnoticed")
        else:
            client._on_connection_closed = self._connection_closed

    @property
    def lost(self) -> bool:
        return self._lost_reason is not None

    def trip(self, reason: str) -> None:
        """Fail everything the producer holds and fence it off. Idempotent."""
        if self._lost_reason is not None:
            return
        self._lost_reason = reason
        log.debug("event producer lost its broker connection (%s); retiring it", reason)
        lost = KafkaConnectionError(f"lost the connection to the event broker ({reason})")
        fail_held_batches(self._producer, lost)
        self._on_lost()

    def _connection_closed(self, conn: Any, reason: CloseReason | None) -> None:
        # SHUTDOWN is our own producer.stop(); every other close was not asked for.
        if reason is not CloseReason.SHUTDOWN:
            self.trip(f"connection closed, {reason.name if reason is not None else 'failed to open'}")
        assert self._closed_callback is not None
        self._closed_callback(conn, reason)

    async def _guarded_send(self, node_id: Any, request: Any, **kwargs: Any) -> Any:
        if not isinstance(request, ProduceRequest):
            return await self._send(node_id, request, **kwargs)
        if self._lost_reason is not None:
            raise ProducerRetiredError(f"producer retired: lost its broker connection ({self._lost_reason})")
        try:
            return await self._send(node_id, request, **kwargs)
        except _CONNECTION_ERRORS as exc:
            self.trip(f"{type(exc).__name__} on send")
            raise


def fail_held_batches(producer: AIOKafkaProducer, exc: KafkaError) -> None:
    """Fail every batch the producer holds (queued, in flight or waiting to be retried) with `exc`.

    Their records are still the caller's (unacknowledged, so spooled or in the spool). aiokafka's
    fail_all() also fails each undrained batch's internal drain waiter, which nobody awaits: we
    retrieve those exceptions so that asyncio does not log "Future exception was never retrieved".
    """
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is None:
        return
    held = [batch for batches in accumulator._batches.values() for batch in batches]
    held += accumulator._pending_batches
    accumulator.fail_all(exc)
    for batch in held:
        waiter = getattr(batch, "_drain_waiter", None)
        if waiter is not None and waiter.done() and not waiter.cancelled():
            waiter.exception()
