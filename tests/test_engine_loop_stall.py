"""A timeout the router's own stalled event loop caused is the caller's timeout, not the
deployment's failure (resilience/loop_stall.py), and its attempt event says so, for the fleet's
health (AttemptEvent.router_stalled). On virtual time: `Blocking` stalls the clock the way a GC
pause blocks the loop, so the attempt's timer fires late."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from consumers import events as ce
from consumers.decode import decode
from router_service.engine import Engine
from router_service.errors import ErrorClass
from router_service.resilience.loop_stall import stalled_at_deadline
from router_service.telemetry import event_codec
from router_service.telemetry.events import AttemptEvent, TelemetryEvent
from router_service.telemetry.observer import EventObserver
from tests.fakes import HANG, Blocking, FakeAdapter
from tests.test_engine import build_engine, ctx, drain, engine_config, make_engine, request, run

BREAKER = {"breaker": {"allowed_fails": 2, "cooldown_s": 60}}


def stalled_timeouts(provider: str) -> float:
    name = "llmrouter_upstream_loop_stalled_timeouts_total"
    value = REGISTRY.get_sample_value(name, {"provider": provider})
    return value or 0.0


@pytest.mark.parametrize(
    ("timeout_s", "overdue_s", "stalled"),
    [
        (0.2, 0.0, False),  # on time
        (0.2, 0.04, False),  # an ordinary loaded loop turn
        (0.2, 0.06, True),
        (10.0, 2.0, False),  # small next to a long timeout
        (10.0, 3.0, True),
    ],
)
def test_a_stall_is_a_lateness_above_a_floor_and_a_share_of_the_timeout(
    timeout_s: float, overdue_s: float, stalled: bool
) -> None:
    assert stalled_at_deadline(timeout_s, overdue_s) is stalled


async def test_timeouts_of_a_blocked_loop_fall_back_but_never_open_the_breaker() -> None:
    engine, adapters, _ = make_engine(resilience=BREAKER)  # attempt timeout 0.2 s
    adapters["a"].script = [Blocking(0.5, HANG)] * 6
    before = stalled_timeouts("a")
    for _ in range(6):
        result = await run(engine, engine.complete(request(), ctx(engine)))
        assert result.deployment.provider == "b"  # the caller still falls back at once
        assert result.attempts[0].error_class == ErrorClass.TIMEOUT.value
    assert adapters["a"].calls == 6  # never excluded: 6 stalls are not 3 failures
    excluded = {c.key for c in engine.route(request()).candidates if not c.eligible}
    assert "a/ma" not in excluded
    assert stalled_timeouts("a") - before == 6


async def test_the_same_hang_without_a_stall_opens_the_breaker() -> None:
    engine, adapters, _ = make_engine(resilience=BREAKER)
    adapters["a"].script = [HANG] * 6
    before = stalled_timeouts("a")
    for _ in range(6):
        await run(engine, engine.complete(request(), ctx(engine)))
    assert adapters["a"].calls == 3  # allowed_fails + 1, then open
    excluded = {c.key for c in engine.route(request()).candidates if not c.eligible}
    assert "a/ma" in excluded
    assert stalled_timeouts("a") == before


async def test_a_streams_first_token_timeout_of_a_blocked_loop_is_not_counted_either() -> None:
    engine, adapters, _ = make_engine(resilience=BREAKER)
    adapters["a"].script = [[Blocking(0.5, HANG)]] * 4
    for _ in range(4):
        items = await run(engine, drain(engine.stream(request(), ctx(engine))))
        assert items  # answered by the fallback
    assert adapters["a"].calls == 4
    excluded = {c.key for c in engine.route(request()).candidates if not c.eligible}
    assert "a/ma" not in excluded


# --- the published attempt event -----------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.events: list[TelemetryEvent] = []

    def publish(self, event: TelemetryEvent) -> None:
        self.events.append(event)


def publishing_engine() -> tuple[Engine, dict[str, FakeAdapter], Sink]:
    """`make_engine`'s engine, publishing through the real EventObserver into `Sink`."""
    sink = Sink()
    engine, adapters = build_engine(engine_config(resilience=BREAKER), EventObserver(sink))
    return engine, adapters, sink


def published_attempts(sink: Sink, encoding: Any) -> list[ce.Attempt]:
    """The attempt events as a consumer reads them off the wire."""
    attempts = []
    for event in sink.events:
        if isinstance(event.body, AttemptEvent):
            _, value, headers = event_codec.encode(event, encoding, router_instance="host-1")
            decoded = decode(value, headers)
            assert decoded is not None and isinstance(decoded.body, ce.Attempt)
            attempts.append(decoded.body)
    return attempts


@pytest.mark.parametrize("encoding", ["json", "protobuf"])
@pytest.mark.parametrize(("step", "stalled"), [(Blocking(0.5, HANG), True), (HANG, False)])
async def test_the_attempt_event_says_whether_the_timeout_was_the_routers_stall(
    encoding: str, step: Any, stalled: bool
) -> None:
    engine, adapters, sink = publishing_engine()
    adapters["a"].script = [step]
    result = await run(engine, engine.complete(request(), ctx(engine)))
    assert result.deployment.provider == "b"
    attempts = [
        (a.provider, a.outcome, a.error_class, a.router_stalled) for a in published_attempts(sink, encoding)
    ]
    # Still a TIMEOUT for the caller either way; only the flag tells the fleet whose it was.
    assert attempts == [("a", "error", "timeout", stalled), ("b", "success", "unspecified", False)]


async def test_a_streams_stalled_first_token_timeout_is_flagged_too() -> None:
    engine, adapters, sink = publishing_engine()
    adapters["a"].script = [[Blocking(0.5, HANG)]]
    assert await run(engine, drain(engine.stream(request(), ctx(engine))))
    flags = [(a.provider, a.error_class, a.router_stalled) for a in published_attempts(sink, "json")]
    assert flags == [("a", "timeout", True), ("b", "unspecified", False)]
