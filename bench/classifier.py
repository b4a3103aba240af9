"""Task classifier accuracy and cost: the rules vs the shipped model, on the held-out set.

Not a test: prints accuracy, per-class recall and the confusion matrix of each classifier on
bench/data/classifier/heldout.jsonl (never trained on), then inference time per request (p50/p99 in
microseconds, each request timed on its own, held-out prompts plus a 2 MB one), and writes
bench/results/classifier.json.

    .venv/bin/python bench/classifier.py [--rounds R]

The machine is shared: compare the two classifiers within one run. Each round times every prompt
once, in a fixed shuffled order, with the garbage collector off; the table shows the median round.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.train_classifier import HELDOUT_PATH, Example, load_examples
from router_service.domain import ChatRequest, Message, Role, TaskType
from router_service.routing.classifier import DEFAULT_CLASSIFIER, DEFAULT_RULES, TaskClassifier
from router_service.routing.classifier_model import CLASS_ORDER

RESULTS = Path(__file__).resolve().parent / "results" / "classifier.json"


def evaluate(classifier: TaskClassifier, examples: Sequence[Example]) -> dict[str, Any]:
    """Accuracy, recall per true class, and confusion[true][predicted] counts."""
    names = [task.value for task in CLASS_ORDER]
    confusion = {true: dict.fromkeys(names, 0) for true in names}
    for example in examples:
        confusion[example.label.value][classifier.classify(example.request()).value] += 1
    recall = {name: confusion[name][name] / max(1, sum(confusion[name].values())) for name in names}
    right = sum(confusion[name][name] for name in names)
    return {"accuracy": right / len(examples), "recall": recall, "confusion": confusion}


def timings_us(classifier: TaskClassifier, requests: Sequence[ChatRequest], rounds: int) -> dict[str, float]:
    order = list(requests)
    random.Random(7).shuffle(order)
    for request in order:  # warm-up: caches, the system-prompt memo
        classifier.classify(request)
    per_round = []
    gc.disable()
    try:
        for _ in range(rounds):
            samples = []
            for request in order:
                start = time.perf_counter_ns()
                classifier.classify(request)
                samples.append((time.perf_counter_ns() - start) / 1000)
            samples.sort()
            per_round.append((samples[len(samples) // 2], samples[int(len(samples) * 0.99)]))
    finally:
        gc.enable()
    return {
        "p50_us": statistics.median(p50 for p50, _ in per_round),
        "p99_us": statistics.median(p99 for _, p99 in per_round),
        "best_round_p99_us": min(p99 for _, p99 in per_round),
    }


def _table(name: str, result: dict[str, Any]) -> None:
    names = [task.value for task in CLASS_ORDER]
    print(f"\n{name}: accuracy {result['accuracy']:.3f}")
    print("recall     " + "  ".join(f"{n[:6]:>6}" for n in names))
    print("           " + "  ".join(f"{result['recall'][n]:6.2f}" for n in names))
    print("confusion (rows: true, columns: predicted)")
    for true in names:
        print(f"{true:<11}" + "  ".join(f"{result['confusion'][true][p]:6d}" for p in names))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    examples = load_examples(HELDOUT_PATH)
    huge = ChatRequest(messages=(Message(Role.USER, "lorem ipsum dolor " * 120_000 + "what is the total?"),))
    requests = [e.request() for e in examples] + [huge]
    classifiers: dict[str, TaskClassifier] = {"rules (old)": DEFAULT_RULES, "model (new)": DEFAULT_CLASSIFIER}
    out: dict[str, Any] = {
        "heldout": str(HELDOUT_PATH.relative_to(HELDOUT_PATH.parents[3])),
        "examples": len(examples),
        "per_class": {t.value: sum(e.label is t for e in examples) for t in TaskType},
        "python": platform.python_version(),
        "classifiers": {},
    }
    for name, classifier in classifiers.items():
        result = evaluate(classifier, examples)
        result["timing"] = timings_us(classifier, requests, args.rounds)
        out["classifiers"][name] = result
        _table(name, result)
    print(f"\ninference per request, {len(requests)} requests x {args.rounds} rounds (median round):")
    for name, result in out["classifiers"].items():
        t = result["timing"]
        p50, p99, best = t["p50_us"], t["p99_us"], t["best_round_p99_us"]
        print(f"  {name:<12} p50 {p50:6.1f} us   p99 {p99:6.1f} us   best p99 {best:.1f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
