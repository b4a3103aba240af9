"""Train the shipped task classifier: multinomial logistic regression, pure Python, deterministic.

    .venv/bin/python bench/train_classifier.py          # writes routing/classifier_weights.json
    .venv/bin/python bench/train_classifier.py --check  # exit 1 if the shipped file differs from a fresh run
    .venv/bin/python bench/train_classifier.py --cv 5   # k-fold accuracy on the TRAINING set (for tuning)

Reads only bench/data/classifier/train.jsonl. The held-out set is for measuring (bench/classifier.py,
tests/routing/test_classifier_model.py) and is never read here: hyper-parameters were chosen with
`--cv` on the training set.

Training is plain SGD on the softmax loss with L2, examples visited in an order shuffled by a fixed
seed, features exactly as `classifier_model.features` computes them at run time. Float operations run
in a fixed order, so the same data gives the same file, byte for byte, on the same Python; weights
are rounded to 3 decimals and rows whose weights are all tiny are dropped, which keeps the file small.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from router_service.domain import (
    ChatRequest,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
    RoutingHints,
    TaskType,
)
from router_service.routing.classifier_model import (
    CLASS_ORDER,
    LinearModel,
    ScanLimits,
    features,
    prompt_parts,
    softmax,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "classifier"
TRAIN_PATH = DATA / "train.jsonl"
HELDOUT_PATH = DATA / "heldout.jsonl"
WEIGHTS_PATH = ROOT / "router_service" / "routing" / "classifier_weights.json"


@dataclass(frozen=True, slots=True)
class Example:
    label: TaskType
    prompt: str
    system: str = ""
    json_mode: bool = False

    def request(self) -> ChatRequest:
        messages = ([Message(Role.SYSTEM, self.system)] if self.system else []) + [
            Message(Role.USER, self.prompt)
        ]
        response_format = ResponseFormat(ResponseFormatType.JSON_OBJECT) if self.json_mode else None
        return ChatRequest(messages=tuple(messages), response_format=response_format, hints=RoutingHints())


def load_examples(path: Path) -> list[Example]:
    """One JSON object per line; a first line with "_header" describes the file and is skipped."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if "_header" in record:
            continue
        try:
            examples.append(
                Example(
                    label=TaskType(record["label"]),
                    prompt=record["prompt"],
                    system=record.get("system", ""),
                    json_mode=bool(record.get("json_mode", False)),
                )
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
    return examples


@dataclass(frozen=True, slots=True)
class TrainParams:
    epochs: int = 40
    learning_rate: float = 2.0
    decay: float = 0.002  # learning rate at step t: learning_rate / (1 + decay * t)
    l2: float = 1e-4
    min_count: int = 2  # a feature must occur in this many training prompts to get weights
    seed: int = 17
    digits: int = 3
    prune: float = 0.05  # rows whose largest |weight| is below this are dropped: they barely move a score
    limits: ScanLimits = field(default_factory=ScanLimits)


def train(examples: Sequence[Example], params: TrainParams = TrainParams()) -> LinearModel:
    width = len(CLASS_ORDER)
    column = {task: i for i, task in enumerate(CLASS_ORDER)}
    encoded = [(features(prompt_parts(e.request(), params.limits)), column[e.label]) for e in examples]
    counts = Counter(f for feats, _ in encoded for f in feats)
    vocabulary = sorted(f for f, n in counts.items() if n >= params.min_count)
    weights: dict[str, list[float]] = {f: [0.0] * width for f in vocabulary}
    bias = [0.0] * width
    order = list(range(len(encoded)))
    rng = random.Random(params.seed)
    step = 0
    for _ in range(params.epochs):
        rng.shuffle(order)
        for i in order:
            feats, label = encoded[i]
            rows = [weights[f] for f in feats if f in weights]
            scale = 1.0 / math.sqrt(len(feats)) if feats else 0.0
            scores = [b + scale * sum(row[c] for row in rows) for c, b in enumerate(bias)]
            probabilities = softmax(scores)
            rate = params.learning_rate / (1.0 + params.decay * step)
            step += 1
            for c in range(width):
                gradient = probabilities[c] - (1.0 if c == label else 0.0)
                bias[c] -= rate * gradient
                for row in rows:
                    row[c] -= rate * (gradient * scale + params.l2 * row[c])
    return _rounded(weights, bias, params)


def _rounded(weights: dict[str, list[float]], bias: list[float], params: TrainParams) -> LinearModel:
    kept = {}
    for feature, row in weights.items():
        rounded = tuple(round(w, params.digits) for w in row)
        if max(map(abs, rounded)) >= params.prune:
            kept[feature] = rounded
    return LinearModel(
        classes=CLASS_ORDER,
        bias=tuple(round(b, params.digits) for b in bias),
        weights=kept,
        limits=params.limits,
    )


def predict(model: LinearModel, example: Example) -> TaskType:
    scores = model.scores(features(prompt_parts(example.request(), model.limits)))
    return model.classes[scores.index(max(scores))]


def cross_validate(examples: Sequence[Example], folds: int, params: TrainParams) -> float:
    shuffled = list(examples)
    random.Random(params.seed).shuffle(shuffled)
    right = 0
    for k in range(folds):
        held = shuffled[k::folds]
        rest = [e for i, e in enumerate(shuffled) if i % folds != k]
        model = train(rest, params)
        right += sum(predict(model, e) is e.label for e in held)
    return right / len(shuffled)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="compare a fresh run with the shipped file")
    parser.add_argument("--cv", type=int, default=0, metavar="K", help="k-fold accuracy on the training set")
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args(argv)
    examples = load_examples(TRAIN_PATH)
    params = TrainParams()
    if args.cv:
        print(f"{args.cv}-fold accuracy on the training set: {cross_validate(examples, args.cv, params):.3f}")
        return 0
    text = train(examples, params).to_json()
    if args.check:
        same = args.out.read_text(encoding="utf-8") == text
        print("shipped weights match a fresh run" if same else f"{args.out} differs from a fresh run")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text) // 1024} KiB) from {len(examples)} examples")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
