"""What the engine hands to telemetry: one event per decision, attempt, completion, error, feedback.

Plain dataclasses over the domain model, standard library only: the engine builds these on the
request path, and the publisher encodes them (protobuf/JSON, CloudEvents headers) later, off the
request path, in its sender's batches. Every step per request costs more than the same step in a
batch (inside a loaded router, per-request code runs with cold caches), so the request path only
wraps what the engine already has, and ids and text are made by the encoder. The wire schema is
`router.v1.Event` in protos/router/v1/events.proto.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple, Protocol

from router_service import domain


class EventContext(Protocol):
    """Who and what a request's events are about; copied onto every event's envelope.

    The engine's CallContext is one, so the events of a request share the object the request
    already has instead of each copying it; RequestContext is the standalone one (feedback,
    tests, benches).
    """

    @property
    def request_id(self) -> str: ...
    @property
    def trace_id(self) -> str: ...  # W3C trace id (32 hex), empty when not traced
    @property
    def span_id(self) -> str: ...  # W3C span id (16 hex)
    @property
    def api_key_id(self) -> str: ...  # the key's id, never the secret
    @property
    def team(self) -> str: ...
    @property
    def customer(self) -> str: ...
    @property
    def user(self) -> str: ...  # the key's end user (an operator-assigned id), empty if none
    @property
    def tags(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class RequestContext:
    """An EventContext of its own, for events that do not come from a routed call."""

    request_id: str
    trace_id: str = ""  # W3C trace id (32 hex), empty when not traced
    span_id: str = ""  # W3C span id (16 hex)
    api_key_id: str = ""  # the key's id, never the secret; empty until governance exists
    team: str = ""
    customer: str = ""
    user: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


# The bodies are values: nothing changes one after it is built (ContentPolicy makes a new one).
# They are not frozen only because the engine builds one per attempt and per request, and a
# frozen dataclass's __init__ (an object.__setattr__ per field) cost 1.76 us for a completion
# against 0.58 us.


@dataclass(slots=True)
class DecisionEvent:
    kind: ClassVar[str] = "decision"

    decision: domain.RouteDecision


@dataclass(slots=True)
class AttemptEvent:
    kind: ClassVar[str] = "attempt"

    index: int  # 0-based position in the response's attempts (see events.proto)
    attempt: domain.AttemptRecord
    upstream_model: str
    hedged: bool = False


@dataclass(slots=True)
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


@dataclass(slots=True)
class ErrorEvent:
    kind: ClassVar[str] = "error"

    status_code: str  # gRPC status code name, e.g. "UNAVAILABLE"
    reason: str  # UPPER_SNAKE ErrorInfo reason
    message: str
    attempt_count: int


@dataclass(slots=True)
class FeedbackEvent:
    kind: ClassVar[str] = "feedback"

    score: float
    tags: Mapping[str, str] = field(default_factory=dict)
    # The scorer's key has the `evaluate` scope. Who scored is the event's context (its api key,
    # team and customer), not the scored request's owner: consumers check that the two may meet.
    evaluator: bool = False


@dataclass(slots=True)
class GovernanceEvent:
    """One admission decision of the budgets and rate limits (events.proto GovernanceEvent)."""

    kind: ClassVar[str] = "governance"

    decision: str  # allow | downgrade | deny | allow_uncounted | deny_store_unavailable
    reserved_cost_nanos: int  # the worst-case reservation
    reserved_tokens: int
    policy: str = ""  # routed with before governance
    level: str = ""  # of the deciding limit (deny, downgrade, deny_store_unavailable)
    entity: str = ""
    metric: str = ""
    limit: int = 0
    current: int = 0
    asked: int = 0
    period: str = ""
    downgrade_policy: str = ""
    hedge: bool = False  # the reservation of a hedge's second attempt
    retry_after_s: float | None = None


GOVERNANCE_DECISIONS = ("allow", "downgrade", "deny", "allow_uncounted", "deny_store_unavailable")

EventBody = DecisionEvent | AttemptEvent | CompletionEvent | ErrorEvent | FeedbackEvent | GovernanceEvent

# Every body kind, in schema order; metric labels and CloudEvents types come from this closed set.
EVENT_KINDS: tuple[str, ...] = tuple(
    body.kind
    for body in (DecisionEvent, AttemptEvent, CompletionEvent, ErrorEvent, FeedbackEvent, GovernanceEvent)
)


class TelemetryEvent(NamedTuple):
    """One event: the request context, the body, and a unique id and time for the envelope.

    A NamedTuple, not a frozen dataclass: three are built per request, and a frozen dataclass's
    __init__ (one object.__setattr__ per field) cost 0.8 us against 0.25 us.

    `event_id` may be "" (the engine's events): the encoder then draws one when it encodes the
    event, once, for the record that is sent or spooled. Drawing it there, in the sender's batch
    loop, rather than per call on the request path cut its cost from 4 us (measured inside a
    loaded router, where per-request code runs with cold caches) to under 1 us an event.
    """

    context: EventContext
    body: EventBody
    event_id: str  # "" = drawn by the encoder
    event_time_unix_s: float

    @classmethod
    def create(cls, context: EventContext, body: EventBody, *, now_unix_s: float) -> TelemetryEvent:
        """A new event with a random (uuid4) id; time comes from the caller so tests stay exact."""
        return cls(context=context, body=body, event_id=new_event_id(), event_time_unix_s=now_unix_s)

    @property
    def kind(self) -> str:
        return self.body.kind


def new_event_id() -> str:
    """A random UUID (version 4) in its canonical lowercase text, as `str(uuid.uuid4())` gives it.

    The encoder draws one for every event, so the 122 random bits come from a Mersenne Twister
    seeded from os.urandom (0.8 us an id, against 1.1 us via os.urandom and 3.9 us via
    uuid.uuid4). Event ids must be unique, not unpredictable: they are not secrets. The generator
    is this module's own, so nobody's `random.seed(n)` can make two processes draw the same ids,
    and it is reseeded in a forked child (`serve --workers`), which would otherwise repeat its
    parent's draws.
    """
    bits = (_ID_RANDOM.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_ID_RANDOM = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_ID_RANDOM.seed)
# The version nibble (bits 76-79: 4) and the RFC 4122 variant (bits 62-63: 0b10) of a 128-bit UUID.
_UUID4_CLEAR = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID4_SET = (0x4 << 76) | (0x2 << 62)


class EventSink(Protocol):
    """Where the engine sends events. `publish` never blocks, never awaits and never raises."""

    def publish(self, event: TelemetryEvent) -> None: ...


class NullSink:
    """The sink used when telemetry is disabled: it discards every event."""

    def publish(self, event: TelemetryEvent) -> None:
        return None
