"""The limits drill's parameters and its workload's constants (price, prompt, output cap): what
its stack, callers and report share (bench/limits_drill.py runs it)."""

from __future__ import annotations

from dataclasses import dataclass

PARTITIONS = 3
NANOS_PER_USD = 1_000_000_000
PRICE = {"input": "10", "output": "30"}  # per Mtok: a dollar goes in about a thousand answers
MAX_OUTPUT = 30  # the caller's cap: a reservation close to a real answer (24 tokens + prompt)
PROMPT = "Please summarise the quarterly numbers for the board."


@dataclass
class Params:
    seconds: float = 140.0  # the burst; two full calendar minutes at the default
    budget_usd: str = "1.00"
    callers: int = 24
    tpm_limit: int = 60_000
    kill_at_s: float | None = None  # default: halfway
    reservation_ttl_s: float = 15.0
    seed: int = 7
    # A burst shorter than a minute starts when it fits in one calendar minute (waits for the
    # next otherwise): the TPM counter is per calendar minute, and a short burst split over two
    # may reach the limit in neither (no refusal), or bind in both with the first's in-flight
    # calls counted in the second's rollup minute.
    one_minute: bool = False
