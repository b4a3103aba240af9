"""Provider health: `llmrouter.health.v1`, rolling attempt statistics and a score per deployment.

Input: attempt events. Per provider/model and input partition, a rolling window (default 300 s
in 30 s slots, by event time) of attempts by outcome and error class, with mergeable latency and
time-to-first-token sketches (router_contract/sketch.py); the score is documented in
router_contract/health_score.py.

Record key: `<provider>/<model>#<input partition>`; readers merge partitions
(router_contract/readers/health.py: slot by slot, sketches merged), then summarise with the same
formula. Value, in the consumers' dict form (on the wire: router.v1.Snapshot `deployment_health`,
without the summaries, which readers recompute):

    {
      "kind": "provider_health",
      "dimension": {"provider": "openai", "model": "gpt-4o-mini"},
      "window": {"start": "...", "end": "...", "seconds": 300, "slot_seconds": 30},
      "attempts": 412, "successes": 401, "cancelled": 3,
      "errors": {"rate_limited": 6, "timeout": 2},
      "request_rate_per_s": 1.43,
      "error_rate": 0.019417, "error_rate_by_class": {"rate_limited": 0.014563, "timeout": 0.004854},
      "latency_ms": {"p50": 612.3, "p90": 1103.9, "p95": 1290.2, "p99": 2010.5},   // successes only
      "ttft_ms": {"p50": 180.1, "p90": ..., "p95": ..., "p99": ...},              // null: no samples
      "health_score": 0.9789,
      "slots": [{"start": "...", "attempts": 41, "successes": 40, "cancelled": 0,
                 "errors": {"timeout": 1},
                 "latency_ms": {"relative_accuracy": 0.01, "zero_count": 0, "bins": {"640": 3, ...}},
                 "ttft_ms": {...}}, ...],
      "generated_at": "...",
      "source": {"topic": "llmrouter.events.v1", "partition": 0, "offset": 5120}
    }

The derived fields describe this input partition only; the merged view describes the fleet.
A tombstone means the deployment had no attempt in the window. Staleness: compare `window.end`
(the newest event time seen) and `generated_at` with the reader's clock.
"""
