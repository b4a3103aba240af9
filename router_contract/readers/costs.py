"""Reading `llmrouter.costs.v1`: fleet-wide totals from the per-partition snapshot records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from router_contract.cost_totals import Totals
from router_contract.snapshot_keys import CHECKPOINT_KEY, parse_record_key
from router_contract.snapshot_records import JsonDict
from router_contract.windows import parse_rfc3339


def window_totals(value: JsonDict, granularity: str, start_s: int) -> Totals | None:
    """Totals of one window in one published value (None when it does not hold that window)."""
    for window in value["windows"].get(granularity, []):
        if int(parse_rfc3339(window["start"])) == start_s:
            return Totals.from_json(window)
    return None


def fleet_totals(latest: Mapping[str, JsonDict | None], granularity: str, start_s: int) -> dict[str, Totals]:
    """{dimension key: totals of one window, summed over input partitions}.

    `latest` is the newest value per record key, as a compacted topic keeps it (None: tombstone).
    """
    merged: dict[str, Totals] = {}
    for record_key, value in latest.items():
        dimension_key, _ = parse_record_key(record_key)
        if value is None or dimension_key == CHECKPOINT_KEY:
            continue
        totals = window_totals(value, granularity, start_s)
        if totals is not None:
            merged.setdefault(dimension_key, Totals()).merge(totals)
    return merged


def merge(values: Iterable[Totals]) -> Totals:
    out = Totals()
    for totals in values:
        out.merge(totals)
    return out
