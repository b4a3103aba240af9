"""Shared in-process fakes for unit tests of pure-ish logic (the engine). Integration tests use
the real simulated provider over HTTP instead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from router_service.clock import SYSTEM_CLOCK, Clock, ManualClock
from router_service.domain import (
    AttemptRecord,
    ChatRequest,
    ChatResult,
    FinishReason,
    Message,
    Role,
    RouteDecision,
    StreamDone,
    StreamEvent,
    TextDelta,
    Usage,
)
from router_service.engine import CallContext, Completion, StreamFinish
from router_service.errors import ErrorClass, ProviderError
from router_service.providers.base import ProviderEndpoint

HANG = "hang"


@dataclass(frozen=True)
class Delayed:
    """A script step: wait `seconds` (on the adapter's clock), then play `then`."""

    seconds: float
    then: Any


def ok_result(text: str = "ok") -> ChatResult:
    return ChatResult(
        message=Message(role=Role.ASSISTANT, content=text),
        finish_reason=FinishReason.STOP,
        usage=Usage(10, 5, 0),
    )


@dataclass(frozen=True)
class Blocking:
    """A script step (or stream event): block the event loop for `seconds` (`ManualClock.stall`:
    a GC pause), then play `then`."""

    seconds: float
    then: Any


def _block(clock: Clock, step: Blocking) -> Any:
    assert isinstance(clock, ManualClock), "Blocking steps need the engine's ManualClock"
    clock.stall(step.seconds)
    return step.then


@dataclass
class FakeAdapter:
    """Plays a script, one step per call: a ChatResult, an exception (raised), HANG, or (for streams) a
    list of StreamEvents/ProviderErrors yielded in order. `Delayed` steps wait on `clock` (give it
    the engine's `ManualClock`, so that nothing sleeps for real)."""

    name: str
    script: list[Any] = field(default_factory=list)
    calls: int = 0
    cancelled: int = 0
    clock: Clock = SYSTEM_CLOCK

    @property
    def endpoint(self) -> ProviderEndpoint:
        return ProviderEndpoint(name=self.name, kind="fake", base_url="http://fake")

    def _next(self) -> Any:
        self.calls += 1
        return self.script.pop(0) if self.script else ok_result(self.name)

    async def complete(self, request: ChatRequest, upstream_model: str) -> ChatResult:
        step = self._next()
        if isinstance(step, Delayed):
            await self.clock.sleep(step.seconds)
            step = step.then
        if isinstance(step, Blocking):
            step = _block(self.clock, step)
        if step == HANG:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if isinstance(step, Exception):
            raise step
        assert isinstance(step, ChatResult)
        return step

    async def stream(self, request: ChatRequest, upstream_model: str) -> AsyncGenerator[StreamEvent, None]:
        step = self._next()
        if isinstance(step, Exception):
            raise step
        events: Sequence[Any] = step if isinstance(step, list) else [TextDelta(self.name), done()]
        try:
            for event in events:
                if isinstance(event, Blocking):
                    event = _block(self.clock, event)
                if event == HANG:
                    await asyncio.Event().wait()
                if isinstance(event, ProviderError):
                    raise event
                yield event
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise


def done() -> StreamDone:
    return StreamDone(finish_reason=FinishReason.STOP, usage=Usage(10, 5, 0))


def error(cls: ErrorClass, status: int = 0) -> ProviderError:
    return ProviderError(cls, f"{cls.value}", status_code=status)


@dataclass
class RecordingObserver:
    decisions: list[RouteDecision] = field(default_factory=list)
    attempts: list[tuple[int, AttemptRecord]] = field(default_factory=list)
    completions: list[Completion | StreamFinish] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def on_decision(self, ctx: CallContext, decision: RouteDecision) -> None:
        self.decisions.append(decision)

    def on_attempt(self, ctx: CallContext, index: int, attempt: AttemptRecord, upstream_model: str) -> None:
        self.attempts.append((index, attempt))

    def on_completion(
        self, ctx: CallContext, request: ChatRequest, outcome: Completion | StreamFinish, latency_s: float
    ) -> None:
        self.completions.append(outcome)

    def on_error(self, ctx: CallContext, error: BaseException, attempt_count: int, latency_s: float) -> None:
        self.errors.append(error)
