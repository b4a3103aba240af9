"""Aggregation consumers: health, costs and quality rollups of the router's events.

Each job reads `llmrouter.events.v1` in its own consumer group through the shared loop in
runner.py, aggregates with pure code (`<job>/aggregate.py`) and publishes per-partition
snapshots to its own topic (`llmrouter.{costs,health,quality}.v1`). Delivery is at-least-once;
aggregates are exactly-once through offsets checkpointed with the state and event-id
deduplication (partition.py, dedupe.py). consumers/README.md describes the design and the
snapshot formats; the entry point is `consumers.main.run_consumer`.

Imports: of the router's side, only the contract package (`router_contract`: the event schema,
the record layout, the snapshot formats and readers); never `router_service` (import-linter).
"""
