"""Routing quality: does the learned policy find the cheapest good model per task? (issue 17)

Not a test: prints a table and writes bench/results/routing_quality.json.

In-process, not the full stack: the real `Router.route` (the shipped classifier on the prompt, the
cost model, filters and strategies) decides, and a simulated judge scores the answer with the
true quality of the chosen model on the prompt's *labelled* task plus Gaussian noise; a share of
the answers is scored and fed back, filed under the region the decision recorded (the router's
task for the request: no hints are sent, as in the issue). Time is virtual: one request per
second. The full stack here (router, consumers, broker) runs far below 1,500 requests per policy
per minute on 2 shared cores, and would measure the same decisions.

Prompts: bench/data/classifier/heldout.jsonl (314 hand-labelled prompts, never trained on),
drawn with replacement. Truth matrix below (our own): different cheap models win different tasks,
only reasoning needs the frontier model. Quality is reported as mean true quality over
always-frontier's on the same request stream; cost cut as 1 - cost / always-frontier's cost.

    .venv/bin/python bench/routing_quality.py [--requests N] [--seed S | --seeds 17,18,19,20,21]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.train_classifier import HELDOUT_PATH, Example, load_examples
from router_service.catalog import Catalog, Deployment, Price
from router_service.domain import ChatRequest, RouteDecision, TaskType
from router_service.errors import NoEligibleCandidateError
from router_service.routing.classifier import DEFAULT_CLASSIFIER
from router_service.routing.learning import (
    BudgetConfig,
    LearnerConfig,
    PosteriorConfig,
    QualityLearner,
)
from router_service.routing.policy import Policy
from router_service.routing.router import Router
from router_service.routing.signals import AlwaysHealthy, QualityView
from router_service.routing.strategies import StrategyParams

RESULTS = Path(__file__).resolve().parent / "results" / "routing_quality.json"
T = TaskType
TASKS = (T.CHAT, T.RETRIEVAL, T.CREATIVE, T.REASONING, T.EXTRACTION, T.CODE)
# model -> (input, output) USD per million tokens, and true quality per task (in TASKS order).
MODELS: Mapping[str, tuple[tuple[float, float], tuple[float, ...]]] = {
    "tiny": ((0.10, 0.40), (0.86, 0.70, 0.62, 0.35, 0.88, 0.50)),
    "small": ((0.30, 1.20), (0.88, 0.87, 0.70, 0.45, 0.80, 0.62)),
    "coder": ((1.00, 4.00), (0.80, 0.78, 0.60, 0.55, 0.84, 0.93)),
    "writer": ((1.50, 6.00), (0.90, 0.80, 0.92, 0.58, 0.70, 0.70)),
    "frontier": ((5.00, 20.00), (0.90, 0.89, 0.91, 0.94, 0.90, 0.94)),
}
FRONTIER = "frontier"
# Believed the other way round: the cheap models good at everything, the frontier poor.
WRONG_PRIORS = {"tiny": 0.9, "small": 0.85, "coder": 0.5, "writer": 0.5, "frontier": 0.3}
JUDGE_SD = 0.15
TOLERANCE = 0.03


def truth(model: str, task: TaskType) -> float:
    return MODELS[model][1][TASKS.index(task)]


def deployment(model: str, prior: float | None) -> Deployment:
    (inp, out), _ = MODELS[model]
    return Deployment(
        provider="sim",
        model=model,
        upstream_model=model,
        price=Price(round(inp * 1e9), round(out * 1e9), round(inp * 1e8)),
        context_window=128_000,
        max_output_tokens=4096,
        capabilities=frozenset({"json", "streaming", "tools"}),
        default_quality=prior,
    )


@dataclass
class Scenario:
    name: str
    strategy: str  # "learned", "quality>cost", "cost", "round_robin", "frontier", "oracle"
    feedback: float = 0.2
    priors: str = "uninformative"  # or "wrong"
    min_quality: float | None = None
    learner: bool = True  # a QualityLearner view; else the old fleet-style blend
    requests: int = 1500
    drift_at: int | None = None  # request index at which coder's code quality halves


class BlendView:
    """The quality view before issue 17 (fleet/signals.py): cumulative mean feedback per (model,
    task), moved from the prior by count / (count + 10); no uncertainty, no decay."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, TaskType], tuple[float, int]] = {}

    def observe(self, key: str, task: TaskType, score: float) -> None:
        total, count = self.sums.get((key, task), (0.0, 0))
        self.sums[(key, task)] = (total + score, count + 1)

    def quality(self, key: str, task: TaskType, prior: float) -> float:
        found = self.sums.get((key, task))
        if found is None:
            return prior
        confidence = found[1] / (found[1] + 10)
        return confidence * found[0] / found[1] + (1 - confidence) * prior

    def observed(self, key: str, task: TaskType) -> bool:
        return (key, task) in self.sums


def learner_config() -> LearnerConfig:
    return LearnerConfig(
        posterior=PosteriorConfig(half_life_s=2_000.0),
        exploration=BudgetConfig(traffic_share=0.25, spend_share=0.5, half_life_s=600.0),
        floor_z=3.0,
    )


@dataclass
class Run:
    quality: list[float] = field(default_factory=list)  # true quality per request (0: failed)
    cost: list[int] = field(default_factory=list)
    chosen: list[str] = field(default_factory=list)
    true_task: list[TaskType] = field(default_factory=list)
    scored: list[bool] = field(default_factory=list)
    explored: int = 0
    failed: int = 0
    drifts: int = 0


def run(scenario: Scenario, stream: Sequence[Example], seed: int) -> Run:
    rng = random.Random(seed)  # feedback sampling and judge noise: the same across policies
    wrong = scenario.priors == "wrong"

    def prior(model: str) -> float:
        return WRONG_PRIORS[model] if wrong else 0.5

    catalog = Catalog(tuple(deployment(m, prior(m)) for m in MODELS), {})
    strategy = "cost" if scenario.strategy in ("frontier", "oracle", "region_oracle") else scenario.strategy
    models = (FRONTIER,) if scenario.strategy == "frontier" else tuple(MODELS)
    policy = Policy(
        name="p",
        models=models,
        strategy=strategy,
        max_attempts=1,
        params=StrategyParams(quality_tolerance=TOLERANCE),
        min_quality=scenario.min_quality,
    )
    router = Router(catalog, {"p": policy}, "p", rng=random.Random(seed + 1))
    learner = QualityLearner(learner_config())
    blend = BlendView()
    view: QualityView = learner if scenario.learner else blend
    out = Run()
    for n, example in enumerate(stream):
        now = float(n)
        request = example.request()
        try:
            decision = route(scenario, router, request, example.label, view, now)
        except NoEligibleCandidateError:
            out.failed += 1
            out.quality.append(0.0)
            out.cost.append(0)
            out.chosen.append("")
            out.true_task.append(example.label)
            out.scored.append(False)
            continue
        model = decision.chosen.partition("/")[2]
        true_q = truth(model, example.label)
        if scenario.drift_at is not None and n >= scenario.drift_at and model == "coder":
            true_q = true_q / 2 if example.label is T.CODE else true_q
        chosen_view = next(c for c in decision.candidates if c.key == decision.chosen)
        out.quality.append(true_q)
        out.cost.append(chosen_view.estimated_cost_nanos)
        out.chosen.append(model)
        out.true_task.append(example.label)
        out.explored += chosen_view.exploration
        scored = rng.random() < scenario.feedback
        judged = min(max(true_q + rng.gauss(0.0, JUDGE_SD), 0.0), 1.0)
        out.scored.append(scored)
        if not scored:
            continue
        region = decision.task_type  # filed under what the decision recorded, never re-classified
        if scenario.learner:
            out.drifts += learner.observe(decision.chosen, region.value, judged, now, prior(model))
        else:
            blend.observe(decision.chosen, region, judged)
    return out


def route(
    scenario: Scenario, router: Router, request: ChatRequest, label: TaskType, view: QualityView, now: float
) -> RouteDecision:
    if scenario.strategy == "oracle":
        return oracle(router, request, label, now)
    if scenario.strategy == "region_oracle":
        return region_oracle(router, request, now)
    return router.route(request, AlwaysHealthy(), now, quality=view)


# Set by `main` from the stream: per classified task, how often each true task lands in it.
REGION_MIX: dict[TaskType, dict[TaskType, int]] = {}


def region_oracle(router: Router, request: ChatRequest, now: float) -> RouteDecision:
    """The ceiling of any router that learns per classified task (the region the decision
    records): knows the true qualities and which true tasks land in each region, and picks the
    cheapest model within 3% of the best mean true quality over that region's mix."""
    decision = router.route(request, AlwaysHealthy(), now)
    mix = REGION_MIX[decision.task_type]
    total = sum(mix.values())

    def mean(model: str) -> float:
        return sum(truth(model, task) * n for task, n in mix.items()) / total

    best = max(mean(m) for m in MODELS)
    good = [c for c in decision.candidates if mean(c.model) >= best * (1 - TOLERANCE)]
    pick = min(good, key=lambda c: c.estimated_cost_nanos)
    task, candidates = decision.task_type, decision.candidates
    return RouteDecision(decision.policy, "region_oracle", task, (pick.key,), candidates)


def oracle(router: Router, request: ChatRequest, label: TaskType, now: float) -> RouteDecision:
    """Knows the true task and qualities: the cheapest model within 3% of the task's best."""
    decision = router.route(request, AlwaysHealthy(), now)
    best = max(truth(m, label) for m in MODELS)
    good = [c for c in decision.candidates if truth(c.model, label) >= best * (1 - TOLERANCE)]
    pick = min(good, key=lambda c: c.estimated_cost_nanos)
    return RouteDecision(decision.policy, "oracle", label, (pick.key,), decision.candidates)


def pareto_ceiling(frontier: Run, target: float) -> float:
    """The largest cost cut any router could reach at `target` x always-frontier's quality if it
    knew every request's true task and the true qualities, sending a share of a task's requests to
    one model and the rest to another where that pays (an LP: each task's (cost, quality) upper
    hull, its segments bought best quality-per-cost first, the last one fractionally). Quality here
    depends only on (model, task), so no router (per cluster, per prompt) can beat it."""
    ratio = {m: price[0] / MODELS[FRONTIER][0][0] for m, (price, _) in MODELS.items()}
    assert all(p[1] / p[0] == MODELS[FRONTIER][0][1] / MODELS[FRONTIER][0][0] for p, _ in MODELS.values())
    segments: list[tuple[float, float, float]] = []  # (quality per cost, cost, quality) of an upgrade
    cost = quality = 0.0
    for task in TASKS:
        spend = sum(c for c, t in zip(frontier.cost, frontier.true_task, strict=True) if t is task)
        count = sum(t is task for t in frontier.true_task)
        points = sorted((spend * ratio[m], count * truth(m, task)) for m in MODELS)
        hull = [points[0]]
        for point in points[1:]:
            if point[1] <= hull[-1][1]:
                continue  # dearer and no better
            while len(hull) >= 2 and _slope(hull[-2], hull[-1]) <= _slope(hull[-1], point):
                hull.pop()
            hull.append(point)
        cost, quality = cost + hull[0][0], quality + hull[0][1]
        segments += [(_slope(a, b), b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(hull)]
    needed = target * sum(frontier.quality) - quality
    for _, extra_cost, extra_quality in sorted(segments, reverse=True):
        if needed <= 0:
            break
        share = min(1.0, needed / extra_quality)
        cost, needed = cost + share * extra_cost, needed - share * extra_quality
    return 1 - cost / sum(frontier.cost) if needed <= 1e-9 else float("nan")


def _slope(a: tuple[float, float], b: tuple[float, float]) -> float:
    return (b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else float("inf")


def summarize(result: Run, frontier: Run, round_robin: Run | None, scenario: Scenario) -> dict[str, Any]:
    total_q, total_c = sum(frontier.quality), sum(frontier.cost)
    row: dict[str, Any] = {
        "policy": scenario.name,
        "requests": len(result.quality),
        "feedback": scenario.feedback,
        "quality_vs_frontier": sum(result.quality) / total_q,
        "cost_cut": 1 - sum(result.cost) / total_c,
        "failed_share": result.failed / len(result.quality),
        "exploration_share": result.explored / len(result.quality),
        "drift_alarms": result.drifts,
        "quality_vs_frontier_after_300": sum(result.quality[300:]) / sum(frontier.quality[300:]),
        "quality_vs_frontier_last_500": sum(result.quality[-500:]) / sum(frontier.quality[-500:]),
    }
    if round_robin is not None:
        row["min_windowed_quality_minus_round_robin_after_300"] = windowed_gap(result, round_robin)
    if scenario.drift_at is not None:
        row.update(drift_figures(result, scenario.drift_at))
    return row


def windowed_gap(result: Run, baseline: Run, window: int = 100) -> float:
    """The worst mean quality over `window`-request windows after the first 300, minus round-robin's."""
    gaps = []
    for start in range(300, len(result.quality) - window + 1, window):
        mine = sum(result.quality[start : start + window]) / window
        theirs = sum(baseline.quality[start : start + window]) / window
        gaps.append(mine - theirs)
    return min(gaps) if gaps else 0.0


def drift_figures(result: Run, drift_at: int) -> dict[str, Any]:
    """Coder's share of the (truly) code requests: before the drop, within the first 200 scored
    requests after it, and after those."""
    scored_after = [n for n in range(drift_at, len(result.scored)) if result.scored[n]]
    cut = scored_after[199] if len(scored_after) >= 200 else len(result.scored)

    def share(lo: int, hi: int) -> float | None:
        code = [n for n in range(lo, hi) if result.true_task[n] is T.CODE]
        return sum(result.chosen[n] == "coder" for n in code) / len(code) if code else None

    return {
        "coder_code_share_before_drop": share(max(0, drift_at - 500), drift_at),
        "coder_code_share_first_200_scored_after_drop": share(drift_at, cut),
        "coder_code_share_after_200_scored": share(cut, len(result.scored)),
        "requests_until_200_scored_after_drop": cut - drift_at,
    }


def scenarios(requests: int) -> list[Scenario]:
    n = requests
    return [
        Scenario("always-frontier", "frontier", requests=n),
        Scenario("round-robin", "round_robin", requests=n),
        Scenario("oracle (cheapest within 3% of the task's best)", "oracle", requests=n),
        Scenario("region oracle (per classified task: a learner's ceiling)", "region_oracle", requests=n),
        Scenario(
            "before: quality>cost, uninformative, 100% fb", "quality>cost", 1.0, learner=False, requests=n
        ),
        Scenario(
            "before: quality>cost, wrong priors, 100% fb",
            "quality>cost",
            1.0,
            "wrong",
            learner=False,
            requests=n,
        ),
        Scenario(
            "before: cost + min_quality 0.8, wrong, 100% fb",
            "cost",
            1.0,
            "wrong",
            0.8,
            learner=False,
            requests=n,
        ),
        Scenario("learned, uninformative, 20% fb", "learned", 0.2, requests=n),
        Scenario("learned, uninformative, 100% fb", "learned", 1.0, requests=n),
        Scenario("learned, wrong priors, 20% fb", "learned", 0.2, "wrong", requests=n),
        Scenario("learned, wrong priors, 100% fb", "learned", 1.0, "wrong", requests=n),
        Scenario("learned + min_quality 0.8, wrong, 20% fb", "learned", 0.2, "wrong", 0.8, requests=n),
        Scenario("learned, drift (coder's code quality halves)", "learned", 0.2, requests=3 * n, drift_at=n),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--seeds",
        help="e.g. 17,18,19,20,21: every row's mean and worst over these seeds; writes nothing",
    )
    args = parser.parse_args(argv)
    if args.seeds:
        print_spread([evaluate(int(seed), args.requests)[0] for seed in args.seeds.split(",")])
        return
    rows, frontier = evaluate(args.seed, args.requests)
    print_table(rows)
    ceilings = {f"{t:.2f}": pareto_ceiling(frontier, t) for t in (0.97, 0.95)}
    print(
        "ceiling (true task and qualities known, tasks split between two models where it pays): "
        + ", ".join(f"{100 * c:.1f}% cost cut at {100 * float(t):.0f}% quality" for t, c in ceilings.items())
    )
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "routing_quality",
                "mode": "in-process: Router.route + simulated judge (no gRPC, no consumers)",
                "python": platform.python_version(),
                "seed": args.seed,
                "judge_sd": JUDGE_SD,
                "truth": {
                    m: dict(zip([t.value for t in TASKS], q, strict=True)) for m, (_, q) in MODELS.items()
                },
                "prices_usd_per_mtok": {m: p for m, (p, _) in MODELS.items()},
                "wrong_priors": WRONG_PRIORS,
                "learner": repr(learner_config()),
                "rows": rows,
                "pareto_ceiling_cost_cut_at_quality": ceilings,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


def evaluate(seed: int, requests: int) -> tuple[list[dict[str, Any]], Run]:
    """Every scenario's row on the stream `seed` draws, and the always-frontier run."""
    examples = load_examples(HELDOUT_PATH)
    picker = random.Random(seed)
    stream = [picker.choice(examples) for _ in range(3 * requests)]
    REGION_MIX.clear()
    for example in stream:
        region = DEFAULT_CLASSIFIER.classify(example.request())
        counts = REGION_MIX.setdefault(region, {})
        counts[example.label] = counts.get(example.label, 0) + 1
    runs: dict[int, tuple[Run, Run]] = {}  # length -> (frontier, round robin) baselines
    rows = []
    for scenario in scenarios(requests):
        base = stream[: scenario.requests]
        if scenario.requests not in runs:
            runs[scenario.requests] = (
                run(Scenario("f", "frontier", requests=scenario.requests), base, seed),
                run(Scenario("rr", "round_robin", requests=scenario.requests), base, seed),
            )
        frontier, round_robin = runs[scenario.requests]
        rows.append(summarize(run(scenario, base, seed), frontier, round_robin, scenario))
    return rows, runs[requests][0]


def print_spread(per_seed: Sequence[Sequence[dict[str, Any]]]) -> None:
    """Mean quality and cost cut, and the worst window gap and drift share, over the seeds."""
    print("| policy | quality (mean) | cost cut (mean) | worst window - RR (min) | drift share (max) |")
    print("|---|---|---|---|---|")
    for index, first in enumerate(per_seed[0]):
        rows = [rows[index] for rows in per_seed]
        drift = [r.get("coder_code_share_first_200_scored_after_drop") for r in rows]
        gap = min(r["min_windowed_quality_minus_round_robin_after_300"] for r in rows)
        print(
            f"| {first['policy']} | {100 * statistics.mean(r['quality_vs_frontier'] for r in rows):.1f}% "
            f"| {100 * statistics.mean(r['cost_cut'] for r in rows):.1f}% | {100 * gap:+.1f} pts "
            f"| {'-' if drift[0] is None else f'{100 * max(d or 0.0 for d in drift):.0f}%'} |"
        )


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    def fmt(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    print("| policy | quality vs frontier | after 300 | cost cut | failed | explored | worst window - RR |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        gap = r.get("min_windowed_quality_minus_round_robin_after_300")
        print(
            f"| {r['policy']} | {fmt(r['quality_vs_frontier'])} | {fmt(r['quality_vs_frontier_after_300'])} "
            f"| {fmt(r['cost_cut'])} | {fmt(r['failed_share'])} | {fmt(r['exploration_share'])} "
            f"| {'-' if gap is None else f'{100 * gap:+.1f} pts'} |"
        )
    for r in rows:
        if "coder_code_share_before_drop" in r:
            print(
                f"drift: coder's share of code before {fmt(r['coder_code_share_before_drop'])}, "
                f"first 200 scored after {fmt(r['coder_code_share_first_200_scored_after_drop'])}, "
                f"then {fmt(r['coder_code_share_after_200_scored'])}; alarms {r['drift_alarms']}"
            )


if __name__ == "__main__":
    main()
