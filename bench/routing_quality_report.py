"""Parts of bench/routing_quality.py: its tables, window and drift figures, and the quality view
before issue 17 (the "before" rows)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from router_service.domain import TaskType


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


def windowed_gap(quality: Sequence[float], baseline: Sequence[float], window: int = 100) -> float:
    """The worst mean quality over `window`-request windows after the first 300, minus round-robin's."""
    gaps = []
    for start in range(300, len(quality) - window + 1, window):
        mine = sum(quality[start : start + window]) / window
        theirs = sum(baseline[start : start + window]) / window
        gaps.append(mine - theirs)
    return min(gaps) if gaps else 0.0


def drift_figures(
    scored: Sequence[bool], true_task: Sequence[TaskType], chosen: Sequence[str], drift_at: int
) -> dict[str, Any]:
    """Coder's share of the (truly) code requests: before the drop, within the first 200 scored
    requests after it, and after those."""
    scored_after = [n for n in range(drift_at, len(scored)) if scored[n]]
    cut = scored_after[199] if len(scored_after) >= 200 else len(scored)

    def share(lo: int, hi: int) -> float | None:
        code = [n for n in range(lo, hi) if true_task[n] is TaskType.CODE]
        return sum(chosen[n] == "coder" for n in code) / len(code) if code else None

    return {
        "coder_code_share_before_drop": share(max(0, drift_at - 500), drift_at),
        "coder_code_share_first_200_scored_after_drop": share(drift_at, cut),
        "coder_code_share_after_200_scored": share(cut, len(scored)),
        "requests_until_200_scored_after_drop": cut - drift_at,
    }
