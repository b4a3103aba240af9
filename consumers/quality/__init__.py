"""Quality: `llmrouter.quality.v1`, feedback scores per model x task type, with a confidence.

Input: decision events (task type), completion events (the model that answered) and feedback
events (a score for a request id), joined per request in a bounded index (join.py). Scores are
kept as integer sums per UTC day over the last 7 days (router_contract/quality_scores.py
documents the statistics).

Record key: `model=<model>,task=<task type>#<input partition>`; readers sum the partitions'
days (router_contract/readers/quality.py). Value, in the consumers' dict form (on the wire:
router.v1.Snapshot `quality`, without the statistics, which readers recompute):

    {
      "kind": "model_quality",
      "dimension": {"model": "gpt-4o-mini", "task_type": "code"},
      "window": {"start": "2026-11-16T00:00:00.000Z", "end": "2026-11-23T00:00:00.000Z", "days": 7},
      "count": 37, "mean_score": 0.812, "stddev": 0.141, "ci95_half_width": 0.045, "confidence": 0.787,
      "effective_count": 37.0, "max_scorer_share": 0.05,
      "days": [{"start": "2026-11-22T00:00:00.000Z", "count": 37,
                "score_sum_micros": "30044000", "score_sq_sum_micros2": "25132....",
                "scorers": {"k_search": {"count": 20, "score_sum_micros": "...", ...},
                            "": {"count": 17, ...}}}],
      "generated_at": "...",
      "source": {"topic": "llmrouter.events.v1", "partition": 1, "offset": 901}
    }

Statistics are scorer-capped (router_contract/quality_scores.py): `count` is the raw number of
scores, `effective_count` the weight after capping each scorer (API key; "" is feedback given with
auth off) at `max_scorer_share` of it. Readers recompute them fleet-wide from the days' `scorers`
(router_contract/readers/quality.py).

Task types are the lowercase TaskType names without prefix ("chat", "code", "retrieval",
"creative", "reasoning", "extraction", "unspecified").
"""
