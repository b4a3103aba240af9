"""The latency sketch: cost per record and per read, DDSketch (the library) vs the home-made one.

    .venv/bin/python -m bench.sketch                 # ~10 s
    .venv/bin/python -m bench.sketch --samples 20000 --reps 7

Rows (best of `--reps`, microseconds):
- record/home-made   the consumers' former LogHistogram.add (one log, one dict increment), kept here
                     as the reference: a bucket index and a count, nothing else
- record/ddsketch    ddsketch.DDSketch.add, what router_contract.sketch.LogHistogram.add runs now
- record/router      LatencySketch.record (slot rotation, clamping, then DDSketch.add): what an
                     attempt costs the router, twice per attempt at most (latency, time to first token)
- read/router        LatencySketch.quantiles over a full 6-slot window (merge + three quantiles):
                     what the QuantileBoard pays once per refresh_s per deployment, never per request
Writes bench/results/sketch.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

from ddsketch import DDSketch

from router_service.resilience.latency_sketch import LatencySketch, SketchConfig

RESULTS = Path(__file__).parent / "results" / "sketch.json"


class _HomeMade:
    """The add path of the home-made LogHistogram this project had, for comparison only."""

    def __init__(self, relative_accuracy: float) -> None:
        self._log_gamma = math.log((1 + relative_accuracy) / (1 - relative_accuracy))
        self._bins: dict[int, int] = {}
        self.count = 0

    def add(self, value: float) -> None:
        self.count += 1
        index = math.ceil(math.log(value) / self._log_gamma)
        self._bins[index] = self._bins.get(index, 0) + 1


def _best_us(run: Callable[[], object], per_call: int, reps: int) -> float:
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / per_call * 1e6


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(1)
    samples = [rng.lognormvariate(-1.5, 0.8) for _ in range(args.samples)]  # seconds, ~0.2 s median
    config = SketchConfig()

    def home_made() -> None:
        sketch = _HomeMade(config.relative_accuracy)
        for value in samples:
            sketch.add(value)

    def library() -> None:
        sketch = DDSketch(config.relative_accuracy)
        for value in samples:
            sketch.add(value)

    def router_record() -> None:
        sketch = LatencySketch(config)
        step = config.window_s / len(samples)
        for i, value in enumerate(samples):
            sketch.record(value, i * step)  # through every slot of the window

    full = LatencySketch(config)
    for i, value in enumerate(samples):
        full.record(value, i * config.window_s / len(samples))
    reads = 200

    def router_read() -> None:
        for _ in range(reads):
            full.quantiles(config.window_s - 1e-6)

    rows = {
        "record/home-made": _best_us(home_made, len(samples), args.reps),
        "record/ddsketch": _best_us(library, len(samples), args.reps),
        "record/router": _best_us(router_record, len(samples), args.reps),
        "read/router": _best_us(router_read, reads, args.reps),
    }
    for name, us in rows.items():
        print(f"{name:<18} {us:8.3f} us")
    print(f"ddsketch / home-made per record: {rows['record/ddsketch'] / rows['record/home-made']:.2f}x")
    RESULTS.write_text(json.dumps({"samples": args.samples, "reps": args.reps, "us": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
