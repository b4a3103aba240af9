"""Publishing decision benchmark: what each way of publishing events costs a router, in one run.

    .venv/bin/python bench/publishing.py                 # ~4 min: both core layouts
    .venv/bin/python bench/publishing.py --quick         # ~1/4 of the requests
    .venv/bin/python bench/publishing.py --layout shared

The overhead workload (bench/overhead.py's machinery: a `router-service sim --preset instant`, one
`router-service serve` per variant, `Complete` at c=32 in closed loop, targets interleaved in
rotating rounds so that the shared machine's drift lands on all of them alike). Variants:

- router/plain            events off
- events/inline           events published in the router's own event loop
- events/forwarder        events handed to the event forwarder child process (only while the
                          router still has one: `events.forwarder` in the config schema)
- events/inline+durable   inline, every event written to the local log before the call answers
                          (`events.durable`, only once the schema has it)

Two core layouts, one after the other in the same run:

- shared   every process may use both cores (a box whose cores all serve: `serve --workers` =
           cores, a one-core CPU limit, or this bench machine with everyone's load)
- pinned   each router alone on CPU 0; its forwarder, the load generator, the sim and the broker
           on CPU 1 (the forwarder's best case: a core of its own)

Figures per variant: req/s at c=32 (and the median over rounds of each round's req/s over the
plain router's in the same round), router process CPU per call, its children's (the forwarder)
CPU per call, and CPU per event ((router + children CPU per call - the plain router's) / events
per call; a call publishes a decision, an attempt and a completion: 3 events).

With --baseline DIR (a source tree, e.g. `git archive <commit> | tar -x -C DIR`) three more
routers are served from that tree in the same rounds (bench/overhead_baseline.py): router/plain@LABEL,
events/inline+durable@LABEL (the same config as this checkout's row: the code's change alone) and,
while that tree has the forwarder, events/forwarder+durable@LABEL (its default: forwarder and
durable log both on). Their "vs plain" and per-event figures are against the tree's own plain
router, and rows "after/base" give this checkout's row over the tree's, c=32 req/s (median of
paired rounds) and CPU per call (router + children): plain/plain, inline+durable/inline+durable,
and inline+durable/forwarder+durable (today's default against the tree's).

With --runs N the layouts repeat N times with fresh processes (runs differ by more than rounds
do) and the summary holds each figure's median. Writes bench/results/publishing_decision.json.
Compare rows of one run, never across runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.overhead_baseline import base_name, events_fields, paired_ratios
from bench.overhead_cells import CellResult, Params, find, progress, run_closed
from bench.overhead_clients import ROUTER_CALLS
from bench.overhead_report import git_head
from bench.overhead_stack import (
    Endpoints,
    closed_loop_targets,
    embedded_broker,
    event_loop_runner,
    sigterm_as_exit,
    spawn_variant,
    start_and_wait,
)
from bench.overhead_variants import RouterVariant
from bench.servers import Fleet, children_cpu_s, process_cpu_s
from router_service.config_schema import EventsConfig

OUTPUT = Path(__file__).resolve().parent / "results" / "publishing_decision.json"
EVENTS_PER_CALL = 3  # decision, attempt, completion
PLAIN = "router/plain"
INLINE_DURABLE = "events/inline+durable"
FORWARDER_DURABLE = "events/forwarder+durable"  # a baseline tree's default, while it had the forwarder
# (this checkout's row, the baseline tree's row): the same config, and today's default vs the tree's.
AFTER_BASE = ((PLAIN, PLAIN), (INLINE_DURABLE, INLINE_DURABLE), (INLINE_DURABLE, FORWARDER_DURABLE))
LAYOUTS = ("shared", "pinned")


@dataclass
class Row:
    layout: str
    variant: str
    rps: float
    rps_vs_plain: float  # median over rounds of (this variant's round req/s / plain's)
    round_rps: list[float]
    errors: int
    router_cpu_us_per_call: float
    children_cpu_us_per_call: float
    cpu_us_per_event: float  # router + children, less the plain router's, per event


def events_base(bootstrap: str, spool_dir: Path) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap,
        "enable_idempotence": False,  # the embedded Tansu broker lacks it
        "create_topic_partitions": 3,
        "spool_dir": str(spool_dir),
    }


@dataclass(frozen=True)
class Baseline:
    """--baseline: the tree, its rows' suffix and the `events` keys its schema knows."""

    tree: Path
    label: str
    fields: frozenset[str]


@dataclass
class Pair:
    """This checkout's row over the baseline tree's, measured in the same rounds."""

    layout: str
    after: str
    base: str
    rps_ratio: float  # median over rounds of after / base req/s
    rps_ratio_range: list[float]  # the paired rounds' lowest and highest: the noise to read against
    cpu_ratio: float  # router + children CPU per call, after / base


def variants(bootstrap: str, tmp: Path, layout: str) -> list[RouterVariant]:
    """The variants this checkout supports: a field the schema lacks drops its row."""
    fields = EventsConfig.model_fields
    http = {"transport": "aiohttp"}
    rows = [RouterVariant(PLAIN, {"http": http})]

    def events(name: str, **extra: Any) -> RouterVariant:
        spool = tmp / layout / name.replace("/", "_")
        return RouterVariant(name, {"http": http, "events": {**events_base(bootstrap, spool), **extra}})

    inline = {"forwarder": False} if "forwarder" in fields else {}
    not_durable = {"durable": False} if "durable" in fields else {}
    rows.append(events("events/inline", **inline, **not_durable))
    if "forwarder" in fields:
        rows.append(events("events/forwarder", forwarder=True, **not_durable))
    if "durable" in fields:
        rows.append(events(INLINE_DURABLE, **inline, durable=True))
    return rows


def base_variants(bootstrap: str, tmp: Path, layout: str, baseline: Baseline) -> list[RouterVariant]:
    """The baseline tree's plain router, its inline+durable one (this checkout's row's config),
    and its forwarder+durable one (the default while the forwarder existed), as far as its
    schema has those fields."""
    http, fields, label = {"transport": "aiohttp"}, baseline.fields, baseline.label

    def row(name: str, **events: Any) -> RouterVariant:
        extra: dict[str, Any] = {"http": http}
        if events:
            spool = tmp / layout / f"{name.replace('/', '_')}-{label}"
            extra["events"] = {**events_base(bootstrap, spool), **events}
        return RouterVariant(base_name(name, label), extra, tree=baseline.tree)

    rows = [row(PLAIN)]
    if "durable" in fields:
        inline = {"forwarder": False} if "forwarder" in fields else {}
        rows.append(row(INLINE_DURABLE, **inline, durable=True))
        if "forwarder" in fields:
            rows.append(row(FORWARDER_DURABLE, forwarder=True, durable=True))
    return rows


async def measure(
    endpoints: Endpoints, params: Params, pin: bool, label: str = ""
) -> tuple[list[Row], list[Pair]]:
    await start_and_wait(endpoints)
    if pin:
        for _, server in endpoints.routers.values():
            os.sched_setaffinity(server.proc.pid, {0})
    targets = closed_loop_targets(endpoints)
    names = list(endpoints.routers)
    # CPU from here on (warm-up included, startup not): startup would dominate a short run.
    before = {name: _cpu(server.proc.pid) for name, (_, server) in endpoints.routers.items()}
    cells = await run_closed({name: targets[name] for name in names}, 32, params)
    cpu = cpu_per_call(endpoints, before)
    layout = "pinned" if pin else "shared"
    rows = []
    for name in names:
        # Each tree's rows against its own plain router.
        plain_name = base_name(PLAIN, label) if label and name.endswith(f"@{label}") else PLAIN
        cell, plain = find(cells, name, 32), find(cells, plain_name, 32)
        paired = [on / off for on, off in zip(cell.round_rps, plain.round_rps, strict=False) if off]
        own, children = cpu[name]
        rows.append(
            Row(
                layout=layout,
                variant=name,
                rps=cell.rps,
                rps_vs_plain=statistics.median(paired) if paired else math.nan,
                round_rps=cell.round_rps,
                errors=cell.errors,
                router_cpu_us_per_call=own,
                children_cpu_us_per_call=children,
                cpu_us_per_event=(own + children - sum(cpu[plain_name])) / EVENTS_PER_CALL,
            )
        )
    return rows, pairs(layout, cells, cpu, label) if label else []


def cpu_per_call(
    endpoints: Endpoints, before: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """Per router: its own and its children's CPU per answered call since `before`."""
    cpu: dict[str, tuple[float, float]] = {}
    for name, (_, server) in endpoints.routers.items():
        calls = ROUTER_CALLS.pop(server.port, 0)
        (own_now, children_now), (own_then, children_then) = _cpu(server.proc.pid), before[name]
        own, children = own_now - own_then, children_now - children_then
        cpu[name] = (own / calls * 1e6, children / calls * 1e6) if calls else (math.nan, math.nan)
    return cpu


def pairs(
    layout: str, cells: list[CellResult], cpu: dict[str, tuple[float, float]], label: str
) -> list[Pair]:
    """The after/base rows whose two routers both ran."""
    out = []
    for after, base in AFTER_BASE:
        base = base_name(base, label)
        if after not in cpu or base not in cpu:
            continue
        paired = paired_ratios(find(cells, after, 32), find(cells, base, 32))
        out.append(
            Pair(
                layout=layout,
                after=after,
                base=base,
                rps_ratio=statistics.median(paired) if paired else math.nan,
                rps_ratio_range=[min(paired), max(paired)] if paired else [],
                cpu_ratio=sum(cpu[after]) / sum(cpu[base]),
            )
        )
    return out


def _cpu(pid: int) -> tuple[float, float]:
    return process_cpu_s(pid), children_cpu_s(pid)


def run_layout(layout: str, params: Params, baseline: Baseline | None = None) -> tuple[list[Row], list[Pair]]:
    progress(f"layout {layout}")
    _, run_loop = event_loop_runner()
    pin = layout == "pinned"
    previous = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {1})  # every process started from here on inherits CPU 1
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-publishing-") as tmp,
            Fleet(Path(tmp)) as fleet,
            embedded_broker(True, Path(tmp)) as bootstrap,
        ):
            sim = fleet.spawn_sim()
            sim_url = f"http://127.0.0.1:{sim.port}/v1"
            chosen = variants(bootstrap, Path(tmp), layout)
            if baseline is not None:
                chosen += base_variants(bootstrap, Path(tmp), layout, baseline)
            endpoints = Endpoints(
                sim=sim,
                echo=fleet.spawn_echo(),
                routers={v.name: (v, spawn_variant(fleet, v, sim_url)) for v in chosen},
            )
            label = baseline.label if baseline is not None else ""
            result: tuple[list[Row], list[Pair]] = run_loop(measure(endpoints, params, pin, label))
            return result
    finally:
        os.sched_setaffinity(0, previous)


def medians(rows: list[Row]) -> list[Row]:
    """One row per (layout, variant): the median of each figure over the runs."""
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.layout, row.variant), []).append(row)
    out = []
    for (layout, variant), group in groups.items():

        def median(name: str, group: list[Row] = group) -> float:
            return float(statistics.median(getattr(row, name) for row in group))

        out.append(
            Row(
                layout=layout,
                variant=variant,
                rps=median("rps"),
                rps_vs_plain=median("rps_vs_plain"),
                round_rps=[],
                errors=sum(row.errors for row in group),
                router_cpu_us_per_call=median("router_cpu_us_per_call"),
                children_cpu_us_per_call=median("children_cpu_us_per_call"),
                cpu_us_per_event=median("cpu_us_per_event"),
            )
        )
    return out


def print_rows(rows: list[Row]) -> None:
    header = (
        f"{'layout':<7} {'variant':<22} {'req/s':>7} {'vs plain':>8} {'err':>4} "
        f"{'router us/call':>14} {'child us/call':>13} {'us/event':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.layout:<7} {r.variant:<22} {r.rps:>7.0f} {r.rps_vs_plain:>8.3f} {r.errors:>4} "
            f"{r.router_cpu_us_per_call:>14.1f} {r.children_cpu_us_per_call:>13.1f} "
            f"{r.cpu_us_per_event:>8.1f}"
        )


def pair_medians(found: list[Pair]) -> list[Pair]:
    """One after/base row per (layout, after, base): the median of its ratios over the runs."""
    groups: dict[tuple[str, str, str], list[Pair]] = {}
    for pair in found:
        groups.setdefault((pair.layout, pair.after, pair.base), []).append(pair)
    return [
        Pair(
            layout=layout,
            after=after,
            base=base,
            rps_ratio=statistics.median(p.rps_ratio for p in group),
            rps_ratio_range=[min(p.rps_ratio for p in group), max(p.rps_ratio for p in group)]
            if len(group) > 1
            else group[0].rps_ratio_range,
            cpu_ratio=statistics.median(p.cpu_ratio for p in group),
        )
        for (layout, after, base), group in groups.items()
    ]


def print_pairs(found: list[Pair]) -> None:
    print(f"\n{'layout':<7} {'after / base':<50} {'rps':>6} {'range':>13} {'CPU/call':>8}")
    for p in found:
        spread = "-".join(f"{v:.3f}" for v in p.rps_ratio_range)
        print(
            f"{p.layout:<7} {p.after + ' / ' + p.base:<50} {p.rps_ratio:>6.3f} {spread:>13} "
            f"{p.cpu_ratio:>8.3f}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 1/4 of the requests")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--requests-per-round", type=int, help="default 1000, --quick 250")
    parser.add_argument("--layout", choices=LAYOUTS, action="append", help="default: both")
    parser.add_argument("--runs", type=int, default=1, help="repeat the layouts; report medians")
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="a source tree to serve three more routers from"
    )
    parser.add_argument("--baseline-label", default="base", help="suffix of the baseline rows")
    parser.add_argument("--output", type=Path, help="default publishing_decision[_vs_LABEL].json")
    args = parser.parse_args(argv)
    if args.output is None:
        suffix = f"_vs_{args.baseline_label}" if args.baseline is not None else ""
        args.output = OUTPUT.with_name(f"{OUTPUT.stem}{suffix}.json")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    per_round = args.requests_per_round or (250 if args.quick else 1000)
    params = Params(
        requests_c1=0,
        requests_c32=args.rounds * per_round,
        warmup=300,
        open_loop_s=0.0,
        rounds=args.rounds,
        concurrencies=(32,),
    )
    baseline = None
    if args.baseline is not None:
        fields = frozenset(events_fields(args.baseline))
        baseline = Baseline(args.baseline, args.baseline_label, fields)
    started, load_before = dt.datetime.now(dt.UTC), os.getloadavg()
    rows: list[Row] = []
    found: list[Pair] = []
    with sigterm_as_exit():
        for run in range(args.runs):
            progress(f"run {run + 1} of {args.runs}")
            for layout in args.layout or LAYOUTS:
                layout_rows, layout_pairs = run_layout(layout, params, baseline)
                rows, found = rows + layout_rows, found + layout_pairs
    summary, pair_summary = medians(rows), pair_medians(found)
    print_rows(summary)
    if pair_summary:
        print_pairs(pair_summary)
    report = {
        "benchmark": "publishing decision",
        "date_utc": started.isoformat(timespec="seconds"),
        "git_head": git_head(),
        "baseline": None
        if baseline is None
        else {"tree": str(baseline.tree.resolve()), "label": baseline.label},
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "params": asdict(params),
        "events_per_call": EVENTS_PER_CALL,
        "runs": args.runs,
        "summary": [asdict(r) for r in summary],
        "after_vs_base": [asdict(p) for p in pair_summary],
        "rows": [asdict(r) for r in rows],
        "pairs": [asdict(p) for p in found],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
