"""The overhead bench's output: the tables it prints, the machine it ran on, the JSON it writes
(bench/overhead.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import httpx

from bench.overhead_budget import BudgetRow
from bench.overhead_cells import CellResult

BENCH_DIR = Path(__file__).resolve().parent


def format_cells(title: str, cells: list[CellResult]) -> str:
    width = max([22, *(len(c.target) for c in cells)])
    header = (
        f"{'target':<{width}} {'conc':>5} {'offered':>8} {'n':>6} {'err':>4} "
        f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>9}"
    )
    lines = [title, header, "-" * len(header)]
    for c in cells:
        offered = f"{c.offered_rps:.0f}" if c.offered_rps else "-"
        lines.append(
            f"{c.target:<{width}} {c.concurrency:>5} {offered:>8} {c.requests:>6} {c.errors:>4} "
            f"{c.p50_ms:>8.3f} {c.p90_ms:>8.3f} {c.p99_ms:>8.3f} {c.max_ms:>8.3f} {c.rps:>9.0f}"
        )
    lines += [f"  {c.target} c={c.concurrency}: first error: {c.first_error}" for c in cells if c.errors]
    return "\n".join(lines)


def format_budget(rows: list[BudgetRow]) -> str:
    width = max([18, *(len(r.variant) for r in rows)])  # baseline rows have long names
    header = (
        f"{'variant':<{width}} {'metric':<24} {'value':>9} {'unit':<4} {'target':<10} {'verdict':<8} basis"
    )
    lines = ["Derived (DESIGN.md performance budget)", header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.variant:<{width}} {r.metric:<24} {r.value:>9.3f} {r.unit:<4} {r.target:<10} "
            f"{r.verdict:<8} {r.basis}"
        )
    return "\n".join(lines)


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(
        f"router overhead benchmark  {m['date_utc']}  cpus={m['cpu_count']}  python {m['python']}  "
        f"loop={m['event_loop']}  load {m['loadavg_before'][0]:.2f} -> {m['loadavg_after'][0]:.2f}"
    )
    print(f"params: {report['params']}\n")
    print(format_cells("Closed loop", [CellResult(**c) for c in report["closed_loop"]]), end="\n\n")
    opened = [CellResult(**c) for c in report["open_loop"]]
    print(format_cells("Open loop (half the router's c=32 rate)", opened))
    print()
    print(format_budget([BudgetRow(**r) for r in report["budget"]]))


def machine_info(started: dt.datetime, loadavg_before: tuple[float, ...], loop_name: str) -> dict[str, Any]:
    return {
        "date_utc": started.isoformat(timespec="seconds"),  # when the run started
        "duration_s": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_before": loadavg_before,
        "loadavg_after": os.getloadavg(),
        "event_loop": loop_name,
        "versions": {"grpcio": grpc.__version__, "httpx": httpx.__version__, "aiohttp": aiohttp.__version__},
        "git_head": git_head(),
    }


def git_head() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    return ""


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
