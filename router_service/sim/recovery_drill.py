"""Fault drill 4, a deployment recovers: how soon a breaker that opened on sim-a lets traffic back
once sim-a answers again, and how soon sim-a gets its fair share (router_service/sim/drill.py has
the harness: sims, router, load, the arrival clock)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from router_contract._gen.router.v1 import router_pb2_grpc as pb_grpc
from router_service.sim.drill import (
    FAILING,
    MODEL,
    ArrivalClock,
    Call,
    Sims,
    admin,
    drill_config,
    drive,
    exclusion_reason,
    running_router,
    share,
)

RECOVERY_COOLDOWN_S = 1.0
RECOVERY_RAMP_S = 1.0
_COOLING = re.compile(r"circuit open: cooling down ([0-9.]+)s more")


async def breaker_open_for(stub: pb_grpc.RouterServiceStub, key: str) -> float | None:
    """What is left of `key`'s cooldown, as `Route` explains it; None when its breaker is not open."""
    m = _COOLING.match(await exclusion_reason(stub, key))
    return float(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class RecoveryDrill:
    calls: list[Call]
    cooldown_left_s: float  # what Route said was left of the cooldown when sim-a recovered
    reached_while_open: int  # requests reaching sim-a while its breaker was open
    back_after_s: float | None  # first request reaching sim-a after it recovered
    fair_after_s: float | None  # sim-a back to a fair share, after it recovered
    cooldown_s: float = RECOVERY_COOLDOWN_S
    ramp_s: float = RECOVERY_RAMP_S


def fair_share_after(
    calls: Sequence[Call], provider: str, since: float, *, parties: int = 3, window_s: float = 0.5
) -> float | None:
    """Seconds after `since` from which every `window_s` window of calls (by send time) until the
    last call gives `provider` at least 80% of a fair 1/`parties` share of the answers."""
    until = max((c.started for c in calls), default=since)
    fair = 0.8 / parties
    step = 0.1
    start: float | None = None
    t = since
    while t + window_s <= until:
        in_window = [c for c in calls if t <= c.started < t + window_s]
        fair_here = bool(in_window) and share(in_window, provider) >= fair
        if not fair_here:
            start = None
        elif start is None:
            start = t
        t += step
    return None if start is None else start - since


async def recovery_drill(sims: Sims, *, concurrency: int = 8, duration_s: float = 3.5) -> RecoveryDrill:
    """Round-robin under steady load; breaker cooldown 1 s, slow-start ramp 1 s. sim-a starts
    answering 500; as soon as `Route` shows its breaker open, sim-a recovers (admin reset). The
    breaker has no active health check: the first request routed to sim-a after the cooldown is
    its probe, so "one probe interval" is the time until the next request is routed there."""
    config = drill_config(
        sims, resilience={"breaker": {"cooldown_s": RECOVERY_COOLDOWN_S, "ramp_s": RECOVERY_RAMP_S}}
    )
    async with admin(sims) as adm, running_router(config) as router, ArrivalClock(sims[FAILING]) as clock:
        load = asyncio.create_task(drive(router.stub, concurrency=concurrency, duration_s=duration_s))
        await asyncio.sleep(0.5)
        await adm.set_profile(FAILING, error_rate=1.0)
        while (left := await breaker_open_for(router.stub, f"{FAILING}/{MODEL}")) is None:
            if load.done():
                raise RuntimeError("the breaker never opened")
            await asyncio.sleep(0.01)
        opened_at = time.monotonic()
        await adm.reset_profile(FAILING)
        recovered_at = time.monotonic()
        calls = await load
    back = clock.first_arrival_after(recovered_at)
    return RecoveryDrill(
        calls=calls,
        cooldown_left_s=left,
        # From 0.1 s after Route showed it open (requests already on their way have landed) to
        # just before the cooldown ends.
        reached_while_open=clock.count_at(recovered_at + left - 0.05) - clock.count_at(opened_at + 0.1),
        back_after_s=None if back is None else back - recovered_at,
        fair_after_s=fair_share_after(calls, FAILING, recovered_at),
    )
