"""Routers served from another source tree (`--baseline DIR`, e.g. `git archive <commit> | tar -x -C
DIR`), measured in the same interleaved rounds as this checkout's: before/after from one run on one
box (bench/overhead.py, bench/publishing.py).

The tree's packages go ahead of the installed ones with PYTHONPATH, and PYTHONSAFEPATH keeps the
working directory off sys.path, in the router and in its own children (the old event forwarder):
run from this checkout, a plain `-m` puts this checkout's router_service first and serves the new
code under the old name. An older tree may not know newer
config keys (its schema forbids extras), so its config is this one's less every key its own schema
refuses, asked of the tree itself in a subprocess; the start (a health probe) proves it serves.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.overhead_budget import BudgetRow, cell_problem, info_row
from bench.overhead_cells import CellResult
from bench.overhead_variants import EVENTS_VARIANT, PLAIN, RouterVariant, deep_merge
from bench.servers import Fleet, Server, free_port

BASE_ROWS = (PLAIN, EVENTS_VARIANT)  # the rows overhead.py also runs from the baseline tree

# Run inside the baseline tree: drop what its schema forbids, then its full parse must pass.
_PRUNE = """
import json, sys
from pydantic import ValidationError
from router_service.config_schema import FileConfig
from router_service.settings import parse_config

config, dropped = json.load(sys.stdin), []
for _ in range(100):
    try:
        FileConfig.model_validate(config)
        break
    except ValidationError as exc:
        extra = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
        if not extra:
            raise SystemExit(str(exc))
        for loc in extra:
            node = config
            for key in loc[:-1]:
                node = node[key]
            node.pop(loc[-1], None)
            dropped.append(".".join(map(str, loc)))
parse_config(config)
print(json.dumps({"config": config, "dropped": dropped}))
"""

_EVENTS_FIELDS = """
import json
from router_service.config_schema import EventsConfig
print(json.dumps(sorted(EventsConfig.model_fields)))
"""


def tree_python(tree: Path) -> list[str]:
    """This interpreter (and its installed dependencies) importing `tree`'s packages first; in the
    environment, so that the tree's own children (the old event forwarder) import them too."""
    return ["env", f"PYTHONPATH={tree.resolve()}", "PYTHONSAFEPATH=1", sys.executable]


def run_in_tree(tree: Path, script: str, stdin: str = "") -> Any:
    out = subprocess.run(
        [*tree_python(tree), "-c", script], input=stdin, capture_output=True, text=True, timeout=120
    )
    if out.returncode:
        raise SystemExit(f"baseline tree {tree}: {out.stderr.strip() or out.stdout.strip()}")
    return json.loads(out.stdout)


def accepted_config(tree: Path, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`config` less the keys `tree`'s schema refuses, and those keys' paths."""
    answer = run_in_tree(tree, _PRUNE, json.dumps(config))
    return answer["config"], answer["dropped"]


def events_fields(tree: Path) -> set[str]:
    """The `events` keys `tree`'s schema knows (bench/publishing.py's variants depend on them)."""
    return set(run_in_tree(tree, _EVENTS_FIELDS))


def serve_argv(tree: Path) -> list[str]:
    """The tree's own command line: `router_launcher` once it exists, `router_service.cli` before."""
    module = "router_launcher.cli" if (tree / "router_launcher").is_dir() else "router_service.cli"
    return [*tree_python(tree), "-m", module]


def spawn_from_tree(
    fleet: Fleet, tree: Path, name: str, config_for_port: Callable[[int], dict[str, Any]]
) -> Server:
    """`serve` from `tree` with the config its schema accepts (not yet ready)."""
    port = free_port()
    config, dropped = accepted_config(tree, config_for_port(port))
    if dropped:
        print(f"  {name}: keys the baseline schema lacks, left out: {', '.join(dropped)}", file=sys.stderr)
    path = fleet.workdir / f"{name.replace('/', '_')}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return fleet.spawn(name, port, [*serve_argv(tree), "serve", "--config", str(path)])


def base_name(name: str, label: str) -> str:
    return f"{name}@{label}"


def row_of(name: str) -> str:
    """The row a (possibly baseline) target repeats: `router/aiohttp@base` -> `router/aiohttp`."""
    return name.split("@", 1)[0]


def base_variants(
    variants: list[RouterVariant], tree: Path, label: str, rows: tuple[str, ...] = BASE_ROWS
) -> list[RouterVariant]:
    """The `rows` among `variants` again, served from `tree`; an events row gets a spool of its
    own (each router locks its spool)."""
    out = []
    for variant in variants:
        if variant.name not in rows:
            continue
        extra = variant.extra
        if "spool_dir" in extra.get("events", {}):
            extra = deep_merge(extra, {"events": {"spool_dir": f"{extra['events']['spool_dir']}-{label}"}})
        out.append(dataclasses.replace(variant, name=base_name(variant.name, label), extra=extra, tree=tree))
    return out


def paired_ratios(after: CellResult, base: CellResult) -> list[float]:
    """after / base req/s of each round: the two cells of a round ran back to back."""
    return [a / b for a, b in zip(after.round_rps, base.round_rps, strict=False) if b]


def ratio_row(name: str, metric: str, value: float, basis: str, *cells: CellResult) -> BudgetRow:
    """An after/base ratio (info), INVALID when a cell behind it had errors."""
    row = info_row(name, metric, value, "x", basis)
    problems = [p for p in map(cell_problem, cells) if p]
    if problems or math.isnan(value):
        row = dataclasses.replace(row, verdict="INVALID", basis="; ".join([basis, *problems]))
    return row


def after_vs_base_rows(
    pairs: list[tuple[str, str]], closed: list[CellResult], cpu_us: dict[str, float]
) -> list[BudgetRow]:
    """Per (after, base) pair: p50 and p99 at c=1 (where measured), c=32 req/s (the median of
    paired rounds, with their range: the spread is the noise to read a difference against) and
    router CPU per request (the process and its children: the old forwarder; `cpu_us` from
    readiness on, as the trees' startups differ), after / base."""
    rows = []
    for after, base in pairs:
        cells = {(c.target, c.concurrency): c for c in closed if c.target in (after, base)}
        vs = f"{after} / {base}"
        if (after, 1) in cells and (base, 1) in cells:
            a1, b1 = cells[(after, 1)], cells[(base, 1)]
            rows.append(ratio_row(after, "after/base p50 @c=1", a1.p50_ms / b1.p50_ms, vs, a1, b1))
            rows.append(ratio_row(after, "after/base p99 @c=1", a1.p99_ms / b1.p99_ms, vs, a1, b1))
        if (after, 32) in cells and (base, 32) in cells:
            a32, b32 = cells[(after, 32)], cells[(base, 32)]
            paired = paired_ratios(a32, b32)
            value = statistics.median(paired) if paired else math.nan
            spread = f" (range {min(paired):.3f}-{max(paired):.3f})" if paired else ""
            basis = f"median of {len(paired)} paired rounds of {vs} rps @c=32{spread}"
            rows.append(ratio_row(after, "after/base rps @c=32", value, basis, a32, b32))
        cpu_a, cpu_b = cpu_us.get(after, math.nan), cpu_us.get(base, math.nan)
        basis = f"{cpu_a:.0f} / {cpu_b:.0f} us, router process + children CPU / calls, from readiness"
        rows.append(info_row(after, "after/base CPU per req", cpu_a / cpu_b, "x", basis))
    return rows


def pairs_of(names: list[str], label: str) -> list[tuple[str, str]]:
    """(after, base) for every target that has its baseline twin."""
    return [(name, base_name(name, label)) for name in names if base_name(name, label) in names]
