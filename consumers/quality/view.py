"""Reading `llmrouter.quality.v1`: fleet-wide feedback statistics per model x task."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from consumers.aggregator import JsonDict
from consumers.quality.scores import ScoreSums, statistics
from consumers.snapshot_keys import CHECKPOINT_KEY, parse_record_key


def fleet_quality(latest: Mapping[str, JsonDict | None]) -> dict[str, dict[str, Any]]:
    """{model x task key: statistics}, summing every input partition's days (None: tombstone).

    Partitions may disagree about which days are still in the window while their watermarks
    differ by a day boundary; the sum takes every day any of them still reports.
    """
    sums: dict[str, ScoreSums] = {}
    dimensions: dict[str, JsonDict] = {}
    for record_key, value in latest.items():
        key, _ = parse_record_key(record_key)
        if value is None or key == CHECKPOINT_KEY:
            continue
        dimensions[key] = value["dimension"]
        for day in value["days"]:
            sums.setdefault(key, ScoreSums()).merge(ScoreSums.from_json(day))
    return {key: {"dimension": dimensions[key], **statistics(total)} for key, total in sums.items()}
