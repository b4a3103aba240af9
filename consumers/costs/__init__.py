"""Cost rollups: `llmrouter.costs.v1`, exact nano-USD and token sums per dimension and window.

Input: completion events. Each completion counts once in each of its dimensions: `total=all`,
`api_key=<id>`, `team=<team>`, `customer=<customer>`, `model=<model>`, `provider=<provider>` and
`tag:<key>=<value>` per caller tag (dimensions.py). Windows: UTC minute, hour and day by event
time; each keeps the current window and the one before (aggregate.py).

Record key: `<dimension>#<input partition>` (snapshot_keys.py); readers sum the partitions of a
dimension (view.py). Value (JSON; amounts are decimal strings, exact beyond 2**53):

    {
      "kind": "cost_rollup",
      "dimension": {"name": "team", "value": "search"},      // tags: also "tag_key"
      "windows": {
        "minute": [{"start": "2026-11-22T05:14:00.000Z", "end": "2026-11-22T05:15:00.000Z",
                    "requests": 12, "cache_hits": 1,
                    "cost_nanos_usd": "348000", "cost_usd": "0.000348000",
                    "cost_saved_nanos_usd": "29100",
                    "input_tokens": "5400", "output_tokens": "820", "cached_input_tokens": "0"},
                   {"start": "2026-11-22T05:15:00.000Z", ...}],
        "hour": [...], "day": [...]
      },
      "generated_at": "2026-11-22T05:15:27.324Z",
      "source": {"topic": "llmrouter.events.v1", "partition": 3, "offset": 18234}
    }

`source.offset`: the state covers every record of that input partition below this offset. A null
value (tombstone) means the dimension has no window left in retention.
"""
