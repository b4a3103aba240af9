"""Aggregation consumers: health, costs and quality rollups of the router's events.

Each job reads `llmrouter.events.v1` in its own consumer group through the shared loop in
runner.py, aggregates with pure code (`<job>/aggregate.py`) and publishes per-partition
snapshots to its own topic (`llmrouter.{costs,health,quality}.v1`). Delivery is at-least-once;
aggregates are exactly-once through offsets checkpointed with the state and event-id
deduplication (partition.py, dedupe.py). consumers/README.md describes the design and the
snapshot formats; the entry point is `consumers.main.run_consumer`.

Imports: the event schema and codec of the router (`router_service._gen...events_pb2`,
`router_service.telemetry.event_codec`), nothing else of it.
"""
