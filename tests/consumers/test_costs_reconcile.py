"""The whole loop of issue 14 on real parts: completions spread over the last hours go through the
real broker to the costs consumer, whose snapshot records a router's fleet view reads back; a
limits store on a real redis-server that lost everything gets a rolling-day budget's spend back
from them, to the nano-dollar, and refuses what it would otherwise have let through."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

import pytest

from router_contract.readers.costs import fleet_buckets
from router_service.fleet.config import FleetConfig
from router_service.fleet.view import Topic, build_view
from router_service.identity.model import Identity
from router_service.limits.errors import BudgetExceededError
from router_service.limits.governor import Governor
from router_service.limits.model import Estimate
from router_service.limits.reconcile import Reconciler, fleet_rolling, fleet_rollup
from router_service.limits.redis_store import RedisLimitStore
from router_service.limits.schema import LimitsConfig
from router_service.telemetry import events as ev
from tests.consumers import helpers
from tests.consumers.conftest import Setup, StartRunner

HOUR = 3600.0
BUDGET_USD = 8_000_000  # over what the random costs sum to (each up to $1,000)


def _spread_events(now: float) -> list[ev.TelemetryEvent]:
    """40 requests, one every 45 minutes back from now: 30 h, so some are older than the day."""
    rng = random.Random(14)
    out: list[ev.TelemetryEvent] = []
    for i in range(40):
        out += helpers.request_events(f"req-14-{i}", rng, now - i * 0.75 * HOUR)
    return out


def _spent_in_last_day(events: list[ev.TelemetryEvent], team: str, now: float) -> int:
    """What team spent in the rolling day at `now`, from the events themselves: completions whose
    hour bucket is no older than the window's oldest (the store's bucket bounds)."""
    oldest = int((now - 24 * HOUR) // HOUR)
    return sum(
        e.body.cost_nanos
        for e in events
        if isinstance(e.body, ev.CompletionEvent)
        and e.context.team == team
        and int(e.event_time_unix_s // HOUR) >= oldest
    )


async def _rollups_with(setup: Setup, team: str, want: int) -> dict:
    """The costs snapshot topic, once the team's rolling-day buckets (in any window) hold `want`."""
    deadline = time.monotonic() + 30
    while True:
        latest = await helpers.read_latest(setup.bootstrap, setup.snapshot_topic)
        buckets = fleet_buckets(latest, "day").get(f"team={team}", {})
        if sum(buckets.values()) >= want or time.monotonic() > deadline:
            return latest
        await asyncio.sleep(0.3)


async def test_a_lost_store_gets_a_rolling_budgets_spend_back_from_the_broker(
    costs_setup: Setup, start_runner: StartRunner, redis_server: str
) -> None:
    now = time.time()
    events = _spread_events(now)
    team = next(e.context.team for e in events if isinstance(e.body, ev.CompletionEvent))
    truth = _spent_in_last_day(events, team, now)
    everything = sum(
        e.body.cost_nanos for e in events if isinstance(e.body, ev.CompletionEvent) and e.context.team == team
    )
    assert 0 < truth < everything  # some of the team's spend is older than the day
    start_runner("costs", costs_setup.config())
    await helpers.publish(costs_setup.bootstrap, costs_setup.input_topic, events)
    latest = await _rollups_with(costs_setup, team, truth)
    view = build_view({Topic.COSTS: latest}, frozenset(), now, FleetConfig())

    config = LimitsConfig.model_validate(
        {
            "budgets": [
                {"level": "team", "entity": team, "usd": str(BUDGET_USD), "period": "day", "rolling": True}
            ]
        }
    )
    # A fresh prefix: the store holds nothing of this spend, as a Redis restarted empty.
    store = RedisLimitStore.from_url(
        redis_server, prefix=f"t-{uuid.uuid4().hex[:8]}:{{limits}}:", timeout_s=5.0
    )
    try:
        governor = Governor(config.to_plan(), store)
        reconciler = Reconciler(governor, fleet_rollup(lambda: view), rolling=fleet_rolling(lambda: view))
        [result] = await reconciler.run_once(now)
        assert (result.store_used, result.rollup_cost, result.restored) == (0, truth, truth)
        caller = Identity(key_id="k", team=team)
        left = BUDGET_USD * 1_000_000_000 - truth
        with pytest.raises(BudgetExceededError):
            await governor.admit(caller, Estimate(cost_nanos=left + 1, tokens=1))
        admitted = await governor.admit(caller, Estimate(cost_nanos=left, tokens=1))
        await admitted.release()
    finally:
        await store.close()
