"""Snapshot record values as the consumers build them and the readers merge them.

A value is one dimension of one input partition (or a partition's checkpoint), keyed as
snapshot_keys.py says; None is a tombstone (the dimension expired).
"""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]
