"""One call as the engine sees it: the facts the API layer hands in (`CallContext`), what a call
ends with (`Completion`, or `StreamStart` ... `StreamFinish`), and who watches it (`RequestObserver`).

Types only: the API layer, the engine and telemetry all import them, and none of them does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from router_service.cache.rules import NO_DIRECTIVES, Directives
from router_service.catalog import Deployment
from router_service.domain import AttemptRecord, ChatRequest, ChatResult, RouteDecision, StreamDone
from router_service.identity.model import UNRESTRICTED, Identity


@dataclass(frozen=True, slots=True)
class CallContext:
    """Per-call facts from the API layer."""

    request_id: str
    deadline: float  # Clock.monotonic() value after which the caller no longer waits
    started: float = 0.0  # Clock.monotonic() when the call arrived
    tags: Mapping[str, str] = field(default_factory=dict)
    stream: bool = False
    trace_id: str = ""  # the caller's W3C trace id (32 hex), empty when untraced
    span_id: str = ""  # the caller's span id (16 hex)

    identity: Identity = UNRESTRICTED  # who called (the auth gate's answer)
    cache: Directives = NO_DIRECTIVES  # the caller's no-cache / no-store / max-age for this call

    # A CallContext is also its events' telemetry.events.EventContext: the attribution
    # dimensions come from the identity, never from what the caller claims in tags.
    @property
    def api_key_id(self) -> str:
        return self.identity.key_id

    @property
    def team(self) -> str:
        return self.identity.team

    @property
    def customer(self) -> str:
        return self.identity.customer

    @property
    def user(self) -> str:
        return self.identity.user


@dataclass(frozen=True, slots=True)
class CacheHit:
    """The answer came from the response cache (router_service/cache/): nothing went upstream,
    so the cost is 0 and there are no attempts."""

    age_s: float  # how old the answer is (0 for a concurrent identical call's fresh answer)
    saved_cost_nanos: int  # what the answer would have cost upstream


@dataclass(frozen=True, slots=True)
class Completion:
    result: ChatResult
    deployment: Deployment
    decision: RouteDecision
    attempts: tuple[AttemptRecord, ...]
    cost_nanos: int
    cache_hit: CacheHit | None = None


@dataclass(frozen=True, slots=True)
class StreamStart:
    """The stream is committed to this deployment; sent before the first delta."""

    deployment: Deployment
    decision: RouteDecision
    attempts: tuple[AttemptRecord, ...]
    cache_hit: CacheHit | None = None  # a replay of a cached answer


@dataclass(frozen=True, slots=True)
class StreamFinish:
    done: StreamDone
    deployment: Deployment
    decision: RouteDecision
    attempts: tuple[AttemptRecord, ...]
    cost_nanos: int
    cache_hit: CacheHit | None = None


class RequestObserver(Protocol):
    """Sees every step of a request: telemetry events and metrics hang off this. Must not block."""

    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None: ...

    def on_attempt(
        self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str
    ) -> None: ...

    def on_completion(
        self, ctx: CallContext, request: ChatRequest, outcome: Completion | StreamFinish, latency_s: float
    ) -> None: ...

    def on_error(
        self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float
    ) -> None: ...


class NullObserver:
    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None:
        pass

    def on_attempt(self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str) -> None:
        pass

    def on_completion(
        self, ctx: CallContext, request: ChatRequest, outcome: Completion | StreamFinish, latency_s: float
    ) -> None:
        pass

    def on_error(self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float) -> None:
        pass
