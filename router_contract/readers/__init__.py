"""Readers of the snapshot topics: per-partition records merged into fleet-wide figures (pure)."""
