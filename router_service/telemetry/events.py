"""What the engine hands to telemetry: one event per decision, attempt, completion, error, feedback.

Plain frozen dataclasses over the domain model, standard library only: the engine builds these on
the request path, and the publisher encodes them (protobuf/JSON, CloudEvents headers) later, off
the request path. The wire schema is `router.v1.Event` in protos/router/v1/events.proto.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from router_service import domain


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who and what a request's events are about; copied onto every event's envelope."""

    request_id: str
    trace_id: str = ""  # W3C trace id (32 hex), empty when not traced
    span_id: str = ""  # W3C span id (16 hex)
    api_key_id: str = ""  # the key's id, never the secret; empty until governance exists
    team: str = ""
    customer: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    kind: ClassVar[str] = "decision"

    decision: domain.RouteDecision


@dataclass(frozen=True, slots=True)
class AttemptEvent:
    kind: ClassVar[str] = "attempt"

    index: int  # 0-based position in the response's attempts (see events.proto)
    attempt: domain.AttemptRecord
    upstream_model: str
    hedged: bool = False


@dataclass(frozen=True, slots=True)
class CompletionEvent:
    kind: ClassVar[str] = "completion"

    provider: str
    model: str
    usage: domain.Usage
    cost_nanos: int  # exact nano-USD
    latency_s: float  # whole request
    attempt_count: int
    stream: bool
    finish_reason: domain.FinishReason
    cache_hit: bool = False
    cost_saved_nanos: int = 0
    # Content is only kept when the publisher's ContentPolicy opts in, and is redacted there;
    # the engine may leave these None when content is not configured, to skip the work.
    prompt_text: str | None = None
    completion_text: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    kind: ClassVar[str] = "error"

    status_code: str  # gRPC status code name, e.g. "UNAVAILABLE"
    reason: str  # UPPER_SNAKE ErrorInfo reason
    message: str
    attempt_count: int


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    kind: ClassVar[str] = "feedback"

    score: float
    tags: Mapping[str, str] = field(default_factory=dict)


EventBody = DecisionEvent | AttemptEvent | CompletionEvent | ErrorEvent | FeedbackEvent

# Every body kind, in schema order; metric labels and CloudEvents types come from this closed set.
EVENT_KINDS: tuple[str, ...] = tuple(
    body.kind for body in (DecisionEvent, AttemptEvent, CompletionEvent, ErrorEvent, FeedbackEvent)
)


@dataclass(frozen=True, slots=True)
class TelemetryEvent:
    """One event: the request context, the body, and a unique id and time for the envelope."""

    context: RequestContext
    body: EventBody
    event_id: str
    event_time_unix_s: float

    @classmethod
    def create(cls, context: RequestContext, body: EventBody, *, now_unix_s: float) -> TelemetryEvent:
        """A new event with a random (uuid4) id; time comes from the caller so tests stay exact."""
        return cls(context=context, body=body, event_id=new_event_id(), event_time_unix_s=now_unix_s)

    @property
    def kind(self) -> str:
        return self.body.kind


def new_event_id() -> str:
    """A random UUID (version 4) in its canonical lowercase text, as `str(uuid.uuid4())` gives it.

    Built from os.urandom directly: this runs on the request path for every event, and uuid.UUID's
    constructor and formatting cost twice as much.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class EventSink(Protocol):
    """Where the engine sends events. `publish` never blocks, never awaits and never raises."""

    def publish(self, event: TelemetryEvent) -> None: ...


class NullSink:
    """The sink used when telemetry is disabled: it discards every event."""

    def publish(self, event: TelemetryEvent) -> None:
        return None
