"""Reading `llmrouter.quality.v1`: fleet-wide feedback statistics per model x task.

Scorer caps (scores.py `capped_statistics`) are applied here, after the partitions are merged:
a scorer's requests are spread over every input partition, so only the merged per-scorer sums
say how much of the fleet's feedback one key gave. The share is the one the consumer was run
with (`max_scorer_share` in every value; the smallest wins if records disagree mid-rollout).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from router_contract.quality_scores import ANONYMOUS, DEFAULT_MAX_SCORER_SHARE, ScoreSums, capped_statistics
from router_contract.snapshot_keys import CHECKPOINT_KEY, parse_record_key
from router_contract.snapshot_records import JsonDict


def fleet_quality(latest: Mapping[str, JsonDict | None]) -> dict[str, dict[str, Any]]:
    """{model x task key: statistics}, summing every input partition's days (None: tombstone).

    Partitions may disagree about which days are still in the window while their watermarks
    differ by a day boundary; the sum takes every day any of them still reports.
    """
    scorers: dict[str, dict[str, ScoreSums]] = {}
    dimensions: dict[str, JsonDict] = {}
    share: dict[str, float] = {}
    for record_key, value in latest.items():
        key, _ = parse_record_key(record_key)
        if value is None or key == CHECKPOINT_KEY:
            continue
        dimensions[key] = value["dimension"]
        recorded = float(value.get("max_scorer_share", DEFAULT_MAX_SCORER_SHARE))
        share[key] = min(share.get(key, recorded), recorded)
        merged = scorers.setdefault(key, {})
        for day in value["days"]:
            for scorer, sums in day_scorers(day).items():
                merged.setdefault(scorer, ScoreSums()).merge(sums)
    return {
        key: {"dimension": dimensions[key], **capped_statistics(by_scorer, share[key])}
        for key, by_scorer in scorers.items()
    }


def day_scorers(day: JsonDict) -> dict[str, ScoreSums]:
    """A day's sums per scorer. A value written before scores had scorers has only the day's
    totals: they read as feedback without a key (counted as before, uncapped)."""
    by_scorer = day.get("scorers")
    if by_scorer is None:
        return {ANONYMOUS: ScoreSums.from_json(day)}
    return {str(scorer): ScoreSums.from_json(sums) for scorer, sums in by_scorer.items()}
