"""Reading `llmrouter.health.v1`: fleet-wide health from the per-partition snapshot records.

Per provider/model: take every input partition's latest value, merge slots with the same start
(counts add, sketches merge), keep the slots of the newest window, and summarise them with the
same formula the consumer uses (score.py). What each partition saw happen lately (failures since
the newest success, breakers routers reported open: health_recent.py) merges the same way, and
caps the score as of `now_s` (the reader's clock; the newest watermark when not given).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from router_contract.health_recent import Recent
from router_contract.health_score import DEFAULT_SCORE_CONFIG, ScoreConfig, merged, summary
from router_contract.health_slots import Slot
from router_contract.snapshot_keys import CHECKPOINT_KEY, parse_record_key
from router_contract.snapshot_records import JsonDict
from router_contract.windows import parse_rfc3339


def fleet_health(
    latest: Mapping[str, JsonDict | None],
    config: ScoreConfig = DEFAULT_SCORE_CONFIG,
    now_s: float | None = None,
) -> dict[str, dict[str, Any]]:
    """{deployment key: summary} from the newest value per record key (None: tombstone)."""
    by_deployment: dict[str, list[JsonDict]] = {}
    for record_key, value in latest.items():
        key, _ = parse_record_key(record_key)
        if value is not None and key != CHECKPOINT_KEY:
            by_deployment.setdefault(key, []).append(value)
    return {key: _merge(values, config, now_s) for key, values in by_deployment.items()}


def _merge(values: list[JsonDict], config: ScoreConfig, now_s: float | None) -> dict[str, Any]:
    end_s = max(parse_rfc3339(value["window"]["end"]) for value in values)
    window_s = int(values[0]["window"]["seconds"])
    slot_s = int(values[0]["window"]["slot_seconds"])
    oldest = int(end_s // slot_s) * slot_s - window_s + slot_s
    slots: dict[int, Slot] = {}
    recent = Recent()
    for value in values:
        recent.merge(Recent.from_json(value.get("recent")))
        for slot_json in value["slots"]:
            start, slot = Slot.from_json(slot_json)
            if start >= oldest:
                slots.setdefault(start, Slot(slot.latency_ms.relative_accuracy)).merge(slot)
    recent.prune(oldest)
    accuracy = next(iter(slots.values())).latency_ms.relative_accuracy if slots else 0.01
    total = merged(slots.values(), accuracy)
    span_s = max(float(slot_s), end_s - oldest)
    return {
        "dimension": values[0]["dimension"],
        **summary(total, span_s, config, recent, end_s if now_s is None else now_s),
    }
