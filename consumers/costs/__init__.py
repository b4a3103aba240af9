"""Cost rollups: `llmrouter.costs.v1`, exact nano-USD and token sums per dimension and window.

Input: completion events, and attempt events that carry an unused answer's cost (a hedge loser
that finished after its request was answered: the upstream billed it). Each counts once in each
of its dimensions: `total=all`,
`api_key=<id>`, `team=<team>`, `customer=<customer>`, `model=<model>`, `provider=<provider>` and
`tag:<key>=<value>` per caller tag whose key is configured as a dimension (`--cost-tag-dimensions`
or COST_TAG_DIMENSIONS, e.g. `feature,env`; none by default: other tags never become keys,
dimensions.py). Windows, by event time: UTC minute, hour and day, UTC calendar week (ISO, from
Monday) and month, and for each zone of `--cost-time-zones` or COST_TIME_ZONES (e.g. `Europe/Berlin`,
the routers' `limits.time_zone`) that zone's calendar hour, day, week and month, named `<unit>@<zone>`
(`month@Europe/Berlin`), the windows budgets count in (router_contract/calendar.py); each keeps
the current window and the one before (aggregate.py), so a month window per dimension at most
two months old.

Record key: `<dimension>#<input partition>` (router_contract/snapshot_keys.py); readers sum the
partitions of a dimension (router_contract/readers/costs.py). Value, in the consumers' dict form
(on the wire: router.v1.Snapshot `cost`, router_contract/snapshot_records.py; amounts are decimal
strings, exact beyond 2**53):

    {
      "kind": "cost_rollup",
      "dimension": {"name": "team", "value": "search"},      // tags: also "tag_key"
      "windows": {
        "minute": [{"start": "2026-11-22T05:14:00.000Z", "end": "2026-11-22T05:15:00.000Z",
                    "requests": 12, "cache_hits": 1,
                    "cost_nanos_usd": "348000", "cost_usd": "0.000348000",
                    "cost_saved_nanos_usd": "29100",
                    "input_tokens": "5400", "output_tokens": "820", "cached_input_tokens": "0",
                    "unused_answers": 1, "unused_cost_nanos_usd": "21000"},
                   {"start": "2026-11-22T05:15:00.000Z", ...}],
        "hour": [...], "day": [...], "week": [...], "month": [...],
        "month@Europe/Berlin": [...]                           // with COST_TIME_ZONES
      },
      "rolling": {                                             // total, api_key, team, customer only
        "day": {"bucket_ms": 3600000,                          // also "hour", "week", "month" (30 days)
                "buckets": [{"bucket": 498624, "cost_nanos_usd": "348000"}, ...]}
      },
      "generated_at": "2026-11-22T05:15:27.324Z",
      "source": {"topic": "llmrouter.events.v1", "partition": 3, "offset": 18234}
    }

`requests` counts completions; `cost_nanos_usd` and the token sums are everything billed, the
`unused_answers` hedge losers' included (their part: `unused_cost_nanos_usd`), so budgets see it.

`rolling`: the cost per rolling-budget bucket (bucket n covers [n * bucket_ms, (n + 1) * bucket_ms)
since the epoch, the limits store's buckets), those of the rolling window at the watermark (at most
25 a period), for the reconciler (router_service/limits/reconcile.py); every period kept is listed.

`source.offset`: the state covers every record of that input partition below this offset. A null
value (tombstone) means the dimension has no window left in retention.
"""
