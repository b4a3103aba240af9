"""The fleet view as text tables, for `routerctl health` and `routerctl costs` (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from router_contract.cost_totals import usd_text
from router_contract.windows import Grain
from router_service.fleet.config import FleetConfig
from router_service.fleet.view import FleetView, Topic


def health_table(view: FleetView, config: FleetConfig) -> str:
    return snapshot_table(view, Topic.HEALTH, lambda: _health_rows(view, config))


def _health_rows(view: FleetView, config: FleetConfig) -> list[str]:
    lines = [
        f"{'deployment':<36} {'score':>6} {'share':>6} {'attempts':>9} {'errors':>7} "
        f"{'p95 s':>7} {'ttft p95 s':>10}",
    ]
    for key, h in sorted(view.health.items()):
        lines.append(
            f"{key:<36} {h.score:>6.3f} {config.traffic_share(h.score):>6.2f} {h.attempts:>9} "
            f"{h.error_rate:>7.1%} {_opt(h.latency_p95_s):>7} {_opt(h.ttft_p95_s):>10}"
        )
    if not view.health:
        lines.append("(no attempts in the window)")
    return lines


def costs_table(view: FleetView, granularity: str, now_s: float) -> str:
    return snapshot_table(view, Topic.COSTS, lambda: _cost_rows(view, granularity, now_s))


def _cost_rows(view: FleetView, granularity: str, now_s: float) -> list[str]:
    start = Grain(granularity).start(now_s)
    # Per-model breakdowns of the callers (`team=search,model=m`): `routerctl costs --team search`.
    totals = {name: t for name, t in view.cost_totals(granularity, start).items() if ",model=" not in name}
    lines = [
        f"current {granularity} window (UTC, since {_utc(start)})",
        f"{'dimension':<40} {'requests':>9} {'cost $':>16} {'input tok':>11} {'output tok':>11} "
        f"{'cached':>9}",
    ]
    # The fleet total first, then the dimensions by name.
    for name in sorted(totals, key=lambda n: (n != "total=all", n)):
        t = totals[name]
        lines.append(
            f"{name:<40} {t.requests:>9} {usd_text(t.cost_nanos_usd):>16} {t.input_tokens:>11} "
            f"{t.output_tokens:>11} {t.cached_input_tokens:>9}"
        )
    if not totals:
        lines.append("(no completions in this window)")
    return lines


# Who publishes each topic's snapshots, for the notice when they are stale.
_PUBLISHERS = {Topic.HEALTH: "health", Topic.QUALITY: "quality", Topic.COSTS: "cost"}


def snapshot_table(view: FleetView, topic: Topic, rows: Callable[[], list[str]]) -> str:
    """`rows` of `topic`'s snapshot as text; a notice instead when the snapshot is stale (the
    figures would be old), and a warning first while its consumers catch up (they read short)."""
    if topic in view.stale:
        return f"{topic.value}: no fresh snapshot (are the {_PUBLISHERS[topic]} consumers running?)"
    return "\n".join([*_catching_up(view, topic), *rows()])


def _catching_up(view: FleetView, topic: Topic) -> list[str]:
    fresh = view.freshness.get(topic)
    if fresh is None or not fresh.catching_up:
        return []
    return [
        f"{topic.value}: consumers catching up ({fresh.lag_count} input records not counted yet): "
        "figures read short until they finish"
    ]


def _opt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}"


def _utc(epoch_s: int) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%d %H:%M")
