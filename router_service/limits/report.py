"""What each limit has used, holds in reservations and has left, read from the store: for
`routerctl budgets` and the per-limit gauges (limits/metrics.py).

A limit of one named entity (and a global one) is read as it stands. A limit of "each key / team /
customer" ("*") has one counter per entity: it is read for the entities asked for (`routerctl
budgets --entity team:search`, or the entities a router has admitted recently), never by
scanning the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from router_service.limits.model import EVERY_ENTITY, Bound, Estimate, Level
from router_service.limits.plan import LimitsPlan, build_checks, windows_of
from router_service.limits.store import LimitStore


@dataclass(frozen=True, slots=True)
class LimitUsage:
    level: str
    entity: str  # "team:search", "global"
    metric: str  # cost (nano-USD), tokens, requests, concurrent
    period: str
    hard: bool
    limit: int
    used: int
    reserved: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used - self.reserved)


def named_bounds(plan: LimitsPlan, entities: Iterable[str] = ()) -> list[Bound]:
    """Every limit of a named entity or the global level, plus each "*" limit for `entities`
    ("team:search", "key:k_1", "customer:acme") of its level."""
    bounds: list[Bound] = []
    for limit in plan.limits:
        if limit.level is Level.GLOBAL:
            bounds.append(Bound(limit, "global"))
        elif limit.entity != EVERY_ENTITY:
            bounds.append(Bound(limit, f"{limit.level.value}:{limit.entity}"))
    named = {(b.limit.level, b.entity, b.limit.metric) for b in bounds}
    for entity in entities:
        level_name, _, name = entity.partition(":")
        for limit in plan.limits:
            if limit.level.value != level_name or limit.entity != EVERY_ENTITY:
                continue
            if (limit.level, entity, limit.metric) in named or not name:
                continue  # the entity's own limit replaces the level's "*" one (plan.bounds_for)
            bounds.append(Bound(limit, entity))
    return bounds


async def usage(store: LimitStore, bounds: Iterable[Bound], now: float) -> list[LimitUsage]:
    """One store read per limit, in the windows current at `now`."""
    bounds = list(bounds)
    checks = build_checks(bounds, windows_of(bounds, now), Estimate(0, 0), 0.0)
    rows = []
    for bound, check in zip(bounds, checks, strict=True):
        used, reserved = await store.read(check.counter, check.oldest_bucket, now)
        limit = bound.limit
        rows.append(
            LimitUsage(
                level=limit.level.value,
                entity=bound.entity,
                metric=limit.metric.value,
                period=limit.period_text,
                hard=limit.hard,
                limit=limit.amount,
                used=used,
                reserved=reserved,
            )
        )
    return rows


def table(rows: Iterable[LimitUsage]) -> str:
    """The rows as text; cost amounts in USD."""
    lines = [
        f"{'entity':<24} {'metric':<10} {'period':<22} {'kind':<4} "
        f"{'limit':>16} {'used':>16} {'reserved':>16} {'remaining':>16}"
    ]
    for r in rows:
        fmt = _usd if r.metric == "cost" else str
        lines.append(
            f"{r.entity:<24} {r.metric:<10} {r.period:<22} {'hard' if r.hard else 'soft':<4} "
            f"{fmt(r.limit):>16} {fmt(r.used):>16} {fmt(r.reserved):>16} {fmt(r.remaining):>16}"
        )
    return "\n".join(lines)


def _usd(nanos: int) -> str:
    whole, frac = divmod(nanos, 1_000_000_000)
    return f"${whole}.{frac:09d}"
