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


def keeps_rolling(latest: Mapping[str, JsonDict | None], period: str, bucket_ms: int) -> bool:
    """Whether the rollups keep buckets of this rolling period and length (every value of a
    limited dimension lists each period its consumer keeps: the first one found answers; False
    for rollups written before rolling buckets)."""
    for value in latest.values():
        if value is not None and "rolling" in value:
            kept = value["rolling"].get(period)
            return kept is not None and int(kept["bucket_ms"]) == bucket_ms
    return False


def fleet_buckets(latest: Mapping[str, JsonDict | None], period: str) -> dict[str, dict[int, int]]:
    """{dimension key: {rolling bucket: cost nano-USD}} of one rolling period ("day"), summed over
    input partitions; only the dimensions budgets count ("team=search", "total=all") have them."""
    merged: dict[str, dict[int, int]] = {}
    for record_key, value in latest.items():
        dimension_key, _ = parse_record_key(record_key)
        if value is None or dimension_key == CHECKPOINT_KEY or "rolling" not in value:
            continue
        kept = value["rolling"].get(period)
        if kept is None:
            continue
        buckets = merged.setdefault(dimension_key, {})
        for bucket in kept["buckets"]:
            index = int(bucket["bucket"])
            buckets[index] = buckets.get(index, 0) + int(bucket["cost_nanos_usd"])
    return merged


def merge(values: Iterable[Totals]) -> Totals:
    out = Totals()
    for totals in values:
        out.merge(totals)
    return out
