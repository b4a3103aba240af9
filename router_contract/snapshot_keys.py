"""Record keys of the snapshot topics.

A key names one dimension of one input partition: `<dimension key>#<input partition>`, e.g.
`team=search#3`, `openai/gpt-4o#0`, `model=gpt-4o,task=code#1`. The partition is part of the key
because a consumer group spreads partitions over instances: each key then has exactly one
writer, and the latest value per key (what a compacted topic keeps) is that partition's state.
Readers merge the partitions of a dimension. `_checkpoint#<partition>` records close each flush
(see partition.py); readers that only want the rollups skip them.

Free-text parts (team names, tag values, model names...) are percent-encoded where they contain
a separator (`=`, `,`, `/`, `#`, `%`...), so keys are unambiguous and stay readable in kcat.
"""

from __future__ import annotations

from urllib.parse import quote

CHECKPOINT_KEY = "_checkpoint"
_PARTITION_SEPARATOR = "#"
_SAFE = " :@+"  # besides letters, digits and "_.-~", which quote never escapes


def part(text: str) -> str:
    return quote(text, safe=_SAFE)


def record_key(dimension_key: str, partition: int) -> str:
    return f"{dimension_key}{_PARTITION_SEPARATOR}{partition}"


def parse_record_key(key: str) -> tuple[str, int]:
    """(dimension key, input partition); ValueError for a key no consumer wrote."""
    dimension_key, separator, partition = key.rpartition(_PARTITION_SEPARATOR)
    if not separator or not partition.isdigit():
        raise ValueError(f"not a snapshot key: {key!r}")
    return dimension_key, int(partition)


def output_partition(input_partition: int, output_partitions: int) -> int:
    """Snapshot records of an input partition all go to one output partition: a restore reads one."""
    return input_partition % output_partitions
