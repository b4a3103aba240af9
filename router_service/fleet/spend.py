"""One caller's spend per model in one window, from the costs rollups: `routerctl costs --team X
--window month` (pure).

The rollups keep each api_key, team and customer's total and its per-model breakdown
(`team=search` and `team=search,model=gpt-4o`, consumers/costs/dimensions.py), exact nano-USD
summed over the input partitions. The total row is the caller's own dimension, not a sum of the
rows above it: the two differ only when a partition's dimension cap sent a breakdown to `_OTHER`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from router_contract.cost_totals import Totals, usd_text
from router_contract.snapshot_keys import part
from router_contract.windows import Grain, grain_name
from router_service.fleet.tables import snapshot_table
from router_service.fleet.view import FleetView, Topic

# `routerctl costs --key` names the rollup's api_key dimension.
ENTITY_DIMENSIONS = {"key": "api_key", "team": "team", "customer": "customer"}
_BREAKDOWN = ",model="


@dataclass(frozen=True, slots=True)
class CallerSpend:
    dimension: str  # "team=search"
    window: str  # "month (Europe/Berlin)"
    start: int
    end: int
    zone: str
    by_model: dict[str, Totals]
    total: Totals


def caller_spend(view: FleetView, level: str, name: str, unit: str, zone: str, now_s: float) -> CallerSpend:
    """`level` key/team/customer; `unit` minute (UTC only), hour, day, week or month in `zone`."""
    grain = Grain(grain_name(unit, zone))  # ValueError for a minute in a zone
    start = grain.start(now_s)
    dimension = f"{ENTITY_DIMENSIONS[level]}={part(name)}"
    totals = view.cost_totals(grain.name, start)
    prefix = dimension + _BREAKDOWN
    by_model = {unquote(key[len(prefix) :]): t for key, t in totals.items() if key.startswith(prefix)}
    return CallerSpend(
        dimension=dimension,
        window=f"{unit} ({zone})",
        start=start,
        end=grain.end(start),
        zone=zone,
        by_model=by_model,
        total=totals.get(dimension, Totals()),
    )


def spend_table(view: FleetView, spend: CallerSpend) -> str:
    return snapshot_table(view, Topic.COSTS, lambda: _spend_rows(spend))


def _spend_rows(spend: CallerSpend) -> list[str]:
    lines = [
        f"{spend.dimension}: current {spend.window} window, {_local(spend.start, spend.zone)} to "
        f"{_local(spend.end, spend.zone)}",
        f"{'model':<32} {'requests':>9} {'cost $':>18} {'input tok':>11} {'output tok':>11} "
        f"{'cached tok':>10} {'hits':>6} {'saved $':>14}",
    ]
    lines.extend(_row(model, spend.by_model[model]) for model in sorted(spend.by_model))
    lines.append(_row("total", spend.total))
    return lines


def _row(label: str, t: Totals) -> str:
    return (
        f"{label:<32} {t.requests:>9} {usd_text(t.cost_nanos_usd):>18} {t.input_tokens:>11} "
        f"{t.output_tokens:>11} {t.cached_input_tokens:>10} {t.cache_hits:>6} "
        f"{usd_text(t.cost_saved_nanos_usd):>14}"
    )


def _local(unix_s: int, zone: str) -> str:
    return dt.datetime.fromtimestamp(unix_s, ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")
