"""The data contract between the router (`router_service`) and the consumers (`consumers`).

What crosses the process boundary between them, and the only code both sides import:
- `_gen/`: the generated protobuf code of protos/router/v1 (the API, the events and the
  snapshots; scripts/gen_protos.sh, never edited).
- `event_records`: how an event travels as a Kafka record (CloudEvents headers, content types)
  and the canonical parser of a record's value.
- `snapshot_records`, `snapshot_keys`, `windows`, `cost_totals`, `quality_scores` and
  `readers/`: what the consumers publish on the snapshot topics and how a reader merges the
  per-partition records into fleet-wide figures, so the router and the consumers cannot disagree
  on what a snapshot means.

Pure: no I/O, no clock; it imports neither `router_service` nor `consumers` (import-linter checks
this and the rest of the layering in `make lint`; README "Layout").
"""
