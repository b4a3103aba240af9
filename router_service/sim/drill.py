"""Fault drills: a real router in front of real simulated providers, under load, while a fault is
injected through the sims' admin API; measured from the callers' side (gRPC responses) and the
upstreams' side (sim request counters).

Everything is real and in one process: `RouterApp` on a free port, `SimServer`s on free ports
(HTTP), a grpc.aio client. `tests/integration/test_drills.py` runs the drills with small counts and
asserts on the numbers; `bench/routing.py --drill` runs drills 1-4 with larger counts and prints
them. Three deployments serve one catalog model (`m` on sim-a, sim-b and sim-c) unless a drill
says otherwise; the fault always goes to sim-a. Drills 1-3 are here with the harness they share;
drill 4 (recovery) is in `recovery_drill.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx

from router_contract._gen.router.v1 import router_pb2 as pb
from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.app import RouterApp
from router_service.settings import parse_config
from router_service.sim.presets import preset_config
from router_service.sim.server import SimServer

SIM_NAMES = ("sim-a", "sim-b", "sim-c")
FAILING = "sim-a"
MODEL = "m"
CALL_TIMEOUT_S = 10.0

Sims = Mapping[str, SimServer]


# --- setup ----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def started_sims(
    names: Sequence[str] = SIM_NAMES, seed: int = 7
) -> AsyncIterator[dict[str, SimServer]]:
    """Simulated providers with the `instant` preset (no latency, no faults) on free ports."""
    servers = {name: SimServer(preset_config("instant", seed=seed)) for name in names}
    try:
        for server in servers.values():
            await server.start()
        yield servers
    finally:
        for server in servers.values():
            await server.stop()


def drill_config(
    sims: Sims,
    *,
    strategy: str = "round_robin",
    policy: Mapping[str, Any] | None = None,
    resilience: Mapping[str, Any] | None = None,
    routing: Mapping[str, Any] | None = None,
    models: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Router config: one catalog model served by every sim, the default policy over it, and the
    default resilience config except for what `resilience` overrides."""
    price = {"input": "0.15", "output": "0.60"}
    catalog = (
        models
        if models is not None
        else [{"name": MODEL, "provider": n, "price_per_mtok": price} for n in sims]
    )
    return {
        "server": {"listen": "127.0.0.1:0", "grace_period_s": 2},
        "metrics": {"listen": ""},
        "routing": {"attempt_timeout_s": 1.0, "first_token_timeout_s": 1.0, **(routing or {})},
        "resilience": dict(resilience or {}),
        "providers": {name: {"kind": "openai", "base_url": server.url} for name, server in sims.items()},
        "models": [dict(m) for m in catalog],
        "policies": {"default": {"models": [MODEL], "strategy": strategy, **(policy or {})}},
    }


@dataclass(frozen=True, slots=True)
class Router:
    app: RouterApp
    stub: pb_grpc.RouterServiceStub


@contextlib.asynccontextmanager
async def running_router(config: Mapping[str, Any]) -> AsyncIterator[Router]:
    """One router process's worth: a RouterApp on a free port and a client channel to it."""
    app = RouterApp(parse_config(config))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Router(app, pb_grpc.RouterServiceStub(channel))
    finally:
        await app.stop(grace_s=1)


class Admin:
    """The sims' admin API (POST /admin/profile, GET /admin/stats, POST /admin/stats/reset)."""

    def __init__(self, sims: Sims, client: httpx.AsyncClient) -> None:
        self._sims = sims
        self._client = client

    def _url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self._sims[name].port}/admin/{path}"

    async def set_profile(self, name: str, **profile: Any) -> None:
        """Change every model of sim `name` (partial profile fields, e.g. error_rate=1.0)."""
        r = await self._client.post(self._url(name, "profile"), json={"model": "*", "profile": profile})
        r.raise_for_status()

    async def reset_profile(self, name: str) -> None:
        r = await self._client.post(self._url(name, "profile"), json={"model": "*", "reset": True})
        r.raise_for_status()

    async def stats(self, name: str) -> dict[str, Any]:
        """Totals over the sim's models: requests, completed, disconnects, outcomes by kind."""
        r = await self._client.get(self._url(name, "stats"))
        r.raise_for_status()
        total: dict[str, Any] = r.json()["total"]
        return total

    async def reset_stats(self, name: str) -> None:
        r = await self._client.post(self._url(name, "stats/reset"))
        r.raise_for_status()


@contextlib.asynccontextmanager
async def admin(sims: Sims) -> AsyncIterator[Admin]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield Admin(sims, client)


# --- load -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """One caller's view of one request."""

    started: float  # time.monotonic() when sent
    latency_s: float
    code: grpc.StatusCode
    provider: str  # who answered ("" on error)
    model: str
    attempts: tuple[pb.Attempt, ...]

    @property
    def ok(self) -> bool:
        return self.code is grpc.StatusCode.OK


def chat_request(text: str = "Drill request", **hints: Any) -> pb.CompleteRequest:
    message = pb.Message(role=pb.ROLE_USER, content=text)
    return pb.CompleteRequest(chat=pb.ChatRequest(messages=[message], routing=pb.RoutingHints(**hints)))


async def complete(stub: pb_grpc.RouterServiceStub, request: pb.CompleteRequest) -> Call:
    started = time.monotonic()
    try:
        resp = await stub.Complete(request, timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as err:
        return Call(started, time.monotonic() - started, err.code(), "", "", ())
    r = resp.routing
    return Call(
        started, time.monotonic() - started, grpc.StatusCode.OK, r.provider, r.model, tuple(r.attempts)
    )


def _default_request(_: int) -> pb.CompleteRequest:
    return chat_request()


async def drive(
    stub: pb_grpc.RouterServiceStub,
    *,
    concurrency: int,
    count: int | None = None,
    duration_s: float | None = None,
    request: Callable[[int], pb.CompleteRequest] = _default_request,
) -> list[Call]:
    """Closed loop: `concurrency` callers send until `count` requests have been sent or
    `duration_s` has passed (no request starts after it). Calls are listed in completion order."""
    if count is None and duration_s is None:
        raise ValueError("give count, duration_s or both")
    tickets = itertools.count()
    stop_at = time.monotonic() + duration_s if duration_s is not None else float("inf")
    calls: list[Call] = []

    async def caller() -> None:
        while time.monotonic() < stop_at:
            i = next(tickets)
            if count is not None and i >= count:
                return
            calls.append(await complete(stub, request(i)))

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return calls


class ArrivalClock:
    """When requests reach one sim: samples its request counter every few milliseconds.

    Reads the sim's counters in-process (the same ones /admin/stats serves) so that each sample's
    time and count are taken at one instant; a poll over HTTP queued behind the load would be
    stamped late and make every time bound look worse than it is. A request is known to have
    arrived by the first sample that counts it (an upper bound, `interval_s` coarse).
    """

    def __init__(self, sim: SimServer, interval_s: float = 0.005) -> None:
        self._sim = sim
        self._interval_s = interval_s
        self.samples: list[tuple[float, int]] = []  # (monotonic time, requests so far)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ArrivalClock:
        self._sample()
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self._sample()

    def _sample(self) -> None:
        requests: int = self._sim.stats.snapshot()["total"]["requests"]
        self.samples.append((time.monotonic(), requests))

    @property
    def total(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def count_at(self, t: float) -> int:
        """Requests counted by the last sample at or before `t`."""
        return max((n for when, n in self.samples if when <= t), default=0)

    def first_arrival_after(self, t: float) -> float | None:
        before = self.count_at(t)
        return next((when for when, n in self.samples if when > t and n > before), None)

    def last_arrival(self) -> float | None:
        last = None
        for (_, previous), (when, n) in itertools.pairwise(self.samples):
            if n > previous:
                last = when
        return last


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def share(calls: Sequence[Call], provider: str) -> float:
    """Share of the answered calls that `provider` answered."""
    answered = [c for c in calls if c.ok]
    return sum(c.provider == provider for c in answered) / len(answered) if answered else 0.0


def success_rate(calls: Sequence[Call]) -> float:
    return sum(c.ok for c in calls) / len(calls) if calls else 0.0


def attempt_s(attempt: pb.Attempt) -> float:
    return float(attempt.latency.ToTimedelta().total_seconds())


async def exclusion_reason(stub: pb_grpc.RouterServiceStub, key: str) -> str:
    """Why `Route` excludes deployment `key` ("provider/model") right now; "" if it does not."""
    route = pb.RouteRequest(chat=chat_request("probe").chat)
    decision = (await stub.Route(route, timeout=CALL_TIMEOUT_S)).decision
    return next((c.exclusion_reason for c in decision.candidates if f"{c.provider}/{c.model}" == key), "")


# --- 1. one of three deployments of one model fails hard ------------------------------------------


@dataclass(frozen=True, slots=True)
class SuccessDrill:
    calls: list[Call]
    reached_failing: int  # requests that reached sim-a (all of them drew the fault)

    @property
    def success_rate(self) -> float:
        return success_rate(self.calls)


async def success_rate_drill(
    sims: Sims, fault: Mapping[str, Any], *, requests: int, concurrency: int, max_s: float | None = None
) -> SuccessDrill:
    """sim-a fails from the start (`fault`, e.g. {"error_rate": 1.0} or {"hang_rate": 1.0});
    round-robin over the three deployments; `max_s` caps the run's length. The breaker cools down
    for only 0.3 s (growing to at most 1 s), so sim-a is probed again and again during the run:
    the steady state of an outage, not just its first seconds."""
    config = drill_config(
        sims,
        resilience={"breaker": {"cooldown_s": 0.3, "max_cooldown_s": 1.0}},
        routing={"attempt_timeout_s": 0.5},
    )
    async with admin(sims) as adm, running_router(config) as router:
        await adm.reset_stats(FAILING)
        await adm.set_profile(FAILING, **fault)
        calls = await drive(router.stub, concurrency=concurrency, count=requests, duration_s=max_s)
        reached: int = (await adm.stats(FAILING))["requests"]
    return SuccessDrill(calls, reached)


# --- 2. a deployment starts answering 500s ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BreakerDrill:
    calls: list[Call]
    reached_after_fault: int
    allowed_fails: int


async def breaker_drill(
    sims: Sims, *, concurrency: int, requests: int, max_s: float | None = None
) -> BreakerDrill:
    """The default resilience config (allowed_fails 3, max_retries 2, 60 s fail window, 30 s
    cooldown); round-robin. After a healthy warm-up, sim-a's stats are reset and it starts
    answering 500. `reached_after_fault` is its `error` outcome count: exactly the requests that
    reached it while failing, same-deployment retries included (each retry is one more request
    reaching it)."""
    async with admin(sims) as adm, running_router(drill_config(sims)) as router:
        warm = await drive(router.stub, concurrency=concurrency, count=60)
        if not all(c.ok for c in warm) or share(warm, FAILING) < 0.2:
            raise RuntimeError("warm-up did not spread healthy traffic over the three deployments")
        await adm.reset_stats(FAILING)
        await adm.set_profile(FAILING, error_rate=1.0)
        calls = await drive(router.stub, concurrency=concurrency, count=requests, duration_s=max_s)
        reached: int = (await adm.stats(FAILING))["outcomes"]["error"]
        allowed_fails = router.app.config.live_state.breaker.allowed_fails
    return BreakerDrill(calls, reached, allowed_fails)


# --- 3. a deployment hangs ----------------------------------------------------------------------------

HANG_ATTEMPT_TIMEOUT_S = 2.0
HANG_STUCK_MULTIPLE = 4.0
HANG_STUCK_MIN_S = 0.1


@dataclass(frozen=True, slots=True)
class HangDrill:
    hedge: bool
    warm_p95_s: float  # sim-a's P95 attempt latency before the fault, as callers saw it
    calls: list[Call]  # requests sent during the fault
    reached: int  # requests that reached sim-a after the fault started
    last_arrival_s: float | None  # when sim-a last saw a new request, after the fault started
    attempt_timeout_s: float = HANG_ATTEMPT_TIMEOUT_S
    failing_attempts: list[pb.Attempt] = field(default_factory=list)  # on sim-a, during the fault
    failing_exclusion: str = ""  # why Route excludes sim-a at the end ("" if it does not)

    @property
    def expected_cut_s(self) -> float:
        """What the engine cuts an attempt on sim-a to: max(multiple x recent P95, stuck_min_s)."""
        return max(HANG_STUCK_MULTIPLE * self.warm_p95_s, HANG_STUCK_MIN_S)

    @property
    def longest_failing_attempt_s(self) -> float:
        return max((attempt_s(a) for a in self.failing_attempts), default=0.0)

    def caller_latency_s(self, q: float) -> float:
        return percentile([c.latency_s for c in self.calls], q)


async def hang_drill(
    sims: Sims,
    *,
    hedge: bool,
    concurrency: int = 16,
    warm_s: float = 1.0,
    fault_s: float = 2.5,
    resilience: Mapping[str, Any] | None = None,
) -> HangDrill:
    """Sims answer in ~40 ms (p99 80 ms); round-robin; the attempt timeout is 2 s, but the engine
    gives up on an attempt after max(4 x its deployment's recent P95, 0.1 s). After a warm-up (so
    sim-a has a P95) sim-a hangs: it accepts requests and never answers. With `hedge`, the policy
    races the next deployment once the first choice has not answered within its own P95."""
    config = drill_config(
        sims,
        routing={"attempt_timeout_s": HANG_ATTEMPT_TIMEOUT_S},
        resilience={
            "stuck_after_p95_multiple": HANG_STUCK_MULTIPLE,
            "stuck_min_s": HANG_STUCK_MIN_S,
            **(resilience or {}),
        },
        policy={"hedge": {"enabled": True}} if hedge else None,
    )
    async with admin(sims) as adm:
        for name in sims:
            await adm.set_profile(name, latency_ms_p50=40, latency_ms_p99=80)
        async with running_router(config) as router:
            warm = await drive(router.stub, concurrency=concurrency, duration_s=warm_s)
            if not all(c.ok for c in warm):
                raise RuntimeError("warm-up failed")
            await asyncio.sleep(1.0)  # routing's P95s refresh about once a second
            warm_failing = [attempt_s(a) for c in warm for a in c.attempts if a.provider == FAILING]
            await adm.reset_stats(FAILING)
            async with ArrivalClock(sims[FAILING]) as clock:
                fault_at = time.monotonic()
                await adm.set_profile(FAILING, hang_rate=1.0)
                calls = await drive(router.stub, concurrency=concurrency, duration_s=fault_s)
            exclusion = await exclusion_reason(router.stub, f"{FAILING}/{MODEL}")
    last = clock.last_arrival()
    return HangDrill(
        hedge=hedge,
        warm_p95_s=percentile(warm_failing, 0.95),
        calls=calls,
        reached=clock.total,
        last_arrival_s=None if last is None else last - fault_at,
        failing_attempts=[a for c in calls for a in c.attempts if a.provider == FAILING],
        failing_exclusion=exclusion,
    )
