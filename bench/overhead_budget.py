"""The overhead bench's derived rows: numbers computed from the cells, each checked against the
"Performance budget" of DESIGN.md where there is one (PASS / MISS), INVALID when a cell behind it
had errors or could not sustain its offered rate, `info` otherwise (bench/overhead.py).

`cpu_us` is router process CPU per answered call by variant name, over the whole run."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from bench.overhead_cells import CellResult, find
from bench.overhead_clients import direct_target
from bench.overhead_variants import (
    AUTH_VARIANT,
    DOOR_VARIANT,
    EVENTS_VARIANT,
    LIMITS_REDIS_VARIANT,
    LIMITS_VARIANT,
    PLAIN,
    VOLATILE_VARIANT,
    RouterVariant,
)

CPU_BASIS = "router process (and children) CPU / calls"
# An open-loop cell that completed less than this fraction of its offered rate was overloaded:
# its latencies measure a queue, not the target, and cannot back a verdict.
SUSTAINED_FRACTION = 0.9


@dataclass
class BudgetRow:
    """One derived number, checked against DESIGN.md's budget where there is one."""

    variant: str
    metric: str
    value: float
    unit: str
    target: str  # "< 0.5 ms", ">= 0.5x", "" for information only
    verdict: str  # PASS | MISS | INVALID | info
    basis: str  # how the value was computed


@dataclass(frozen=True)
class Budget:
    metric: str
    unit: str
    limit: float
    higher_is_better: bool

    @property
    def target(self) -> str:
        return f"{'>=' if self.higher_is_better else '<'} {self.limit:g} {self.unit}"

    def verdict(self, value: float) -> str:
        ok = value >= self.limit if self.higher_is_better else value < self.limit
        return "PASS" if ok else "MISS"


OVERHEAD_P50 = Budget("overhead p50 @c=1", "ms", 0.5, higher_is_better=False)
OVERHEAD_P99 = Budget("overhead p99 @c=1", "ms", 1.5, higher_is_better=False)
THROUGHPUT_VS_ECHO = Budget("rps @c=32 / echo rps", "x", 0.5, higher_is_better=True)
OPEN_LOOP_ADDED_P99 = Budget("open-loop added p99", "ms", 3.0, higher_is_better=False)
TELEMETRY_COST = Budget("telemetry throughput cost", "%", 5.0, higher_is_better=False)
# Issue 16: the HTTP door against the gRPC path of the same router config, same workload.
DOOR_ADDED_P50 = Budget("door p50 @c=1 - gRPC", "ms", 0.2, higher_is_better=False)
DOOR_THROUGHPUT = Budget("door rps @c=32 / gRPC", "x", 0.8, higher_is_better=True)
LIMITS_ADDED_P50 = Budget("limits p50 @c=1 - off", "ms", 0.3, higher_is_better=False)
LIMITS_THROUGHPUT_LOSS = Budget("limits tput loss @c=32", "%", 10.0, higher_is_better=False)


def cell_problem(cell: CellResult) -> str:
    """Why a cell cannot back a verdict ("" when it can)."""
    if cell.errors:
        return f"{cell.target} had {cell.errors} errors"
    if cell.offered_rps and cell.rps < SUSTAINED_FRACTION * cell.offered_rps:
        return f"{cell.target} did not sustain {cell.offered_rps:.0f} req/s ({cell.rps:.0f} done/s)"
    return ""


def budget_row(variant: str, budget: Budget, value: float, basis: str, *cells: CellResult) -> BudgetRow:
    problems = [problem for problem in map(cell_problem, cells) if problem]
    if problems or math.isnan(value):
        verdict, basis = "INVALID", "; ".join([basis, *problems])
    else:
        verdict = budget.verdict(value)
    return BudgetRow(variant, budget.metric, value, budget.unit, budget.target, verdict, basis)


def info_row(variant: str, metric: str, value: float, unit: str, basis: str) -> BudgetRow:
    return BudgetRow(variant, metric, value, unit, "", "info", basis)


def paired_losses(on: CellResult, off: CellResult) -> list[float]:
    """1 - on / off req/s of each round, the two cells of a round measured back to back: the
    shared machine's speed drifts by more than the effect between rounds, and pairing cancels
    that drift where pooling all rounds does not."""
    return [1 - a / b for a, b in zip(on.round_rps, off.round_rps, strict=False) if b]


def derive(
    variants: list[RouterVariant],
    closed: list[CellResult],
    opened: list[CellResult],
    cpu_us: dict[str, float],
) -> list[BudgetRow]:
    """The full run's rows: every router variant against the direct call with its transport."""
    rows = [
        row for variant in variants for row in variant_rows(variant.name, variant.transport, closed, opened)
    ]
    for variant in variants:
        cpu = cpu_us.get(variant.name, math.nan)
        rows.append(info_row(variant.name, "router CPU per request", cpu, "us", CPU_BASIS))
    names = {v.name for v in variants}
    if AUTH_VARIANT in names:
        rows += auth_rows(closed, cpu_us)
    if DOOR_VARIANT in names:
        rows += door_rows(closed, cpu_us)
    if EVENTS_VARIANT in names:
        rows += telemetry_rows(closed, cpu_us)
    return rows


def variant_rows(
    name: str, transport: str, closed: list[CellResult], opened: list[CellResult]
) -> list[BudgetRow]:
    direct = direct_target(transport)
    echo32 = find(closed, "echo", 32)
    router1, direct1 = find(closed, name, 1), find(closed, direct, 1)
    router32, direct32 = find(closed, name, 32), find(closed, direct, 32)
    router_ol, direct_ol = find(opened, name), find(opened, direct)
    vs = f"{name} - {direct}"
    return [
        budget_row(name, OVERHEAD_P50, router1.p50_ms - direct1.p50_ms, vs, router1, direct1),
        budget_row(name, OVERHEAD_P99, router1.p99_ms - direct1.p99_ms, vs, router1, direct1),
        budget_row(name, THROUGHPUT_VS_ECHO, router32.rps / echo32.rps, f"{name} / echo", router32, echo32),
        budget_row(
            name,
            OPEN_LOOP_ADDED_P99,
            router_ol.p99_ms - direct_ol.p99_ms,
            f"{vs} at {router_ol.offered_rps:.0f} req/s",
            router_ol,
            direct_ol,
        ),
        info_row(name, "rps @c=32 / direct rps", router32.rps / direct32.rps, "x", f"{name} / {direct}"),
        info_row(name, "overhead p50 @c=32", router32.p50_ms - direct32.p50_ms, "ms", vs),
    ]


def auth_rows(closed: list[CellResult], cpu_us: dict[str, float]) -> list[BudgetRow]:
    added = cpu_us.get(AUTH_VARIANT, math.nan) - cpu_us.get(PLAIN, math.nan)
    auth32, plain32 = find(closed, AUTH_VARIANT, 32), find(closed, PLAIN, 32)
    return [
        info_row(AUTH_VARIANT, "auth CPU per request", added, "us", f"{AUTH_VARIANT} - {PLAIN}"),
        info_row(AUTH_VARIANT, "rps @c=32 / plain", auth32.rps / plain32.rps, "x", f"vs {PLAIN}"),
    ]


def door_rows(closed: list[CellResult], cpu_us: dict[str, float]) -> list[BudgetRow]:
    """The OpenAI door against the gRPC path (PLAIN: the same config without the door), same
    request, same sim: the door's added p50 at c=1 minus the gRPC path's is door p50 - gRPC p50,
    as both are measured against the same direct call. Throughput: the median over rounds of
    door / gRPC req/s, each round's two cells measured back to back (the pooled ratio too)."""
    door1, grpc1 = find(closed, DOOR_VARIANT, 1), find(closed, PLAIN, 1)
    door32, grpc32 = find(closed, DOOR_VARIANT, 32), find(closed, PLAIN, 32)
    paired = [d / g for d, g in zip(door32.round_rps, grpc32.round_rps, strict=False) if g]
    ratio = statistics.median(paired) if paired else door32.rps / grpc32.rps
    door_cpu, grpc_cpu = cpu_us.get(DOOR_VARIANT, math.nan), cpu_us.get(PLAIN, math.nan)
    vs = f"vs {PLAIN}"
    return [
        budget_row(
            DOOR_VARIANT,
            DOOR_ADDED_P50,
            door1.p50_ms - grpc1.p50_ms,
            f"{DOOR_VARIANT} - {PLAIN}",
            door1,
            grpc1,
        ),
        info_row(DOOR_VARIANT, "door p99 @c=1 - gRPC", door1.p99_ms - grpc1.p99_ms, "ms", vs),
        budget_row(
            DOOR_VARIANT,
            DOOR_THROUGHPUT,
            ratio,
            f"median of {len(paired)} paired rounds of {DOOR_VARIANT} / {PLAIN} rps @c=32",
            door32,
            grpc32,
        ),
        info_row(DOOR_VARIANT, "door/gRPC rps, pooled", door32.rps / grpc32.rps, "x", "all rounds at once"),
        info_row(DOOR_VARIANT, "door CPU - gRPC per req", door_cpu - grpc_cpu, "us", vs),
    ]


def limits_rows(closed: list[CellResult], cpu_us: dict[str, float]) -> list[BudgetRow]:
    """What budgets and rate limits cost on the request path, per store: the added p50 at c=1
    (the admit's store round trip is on the caller's path, the settle is not) and the c=32
    throughput loss, the median of its paired rounds."""
    return [
        row
        for name in (LIMITS_VARIANT, LIMITS_REDIS_VARIANT)
        for row in limits_store_rows(name, closed, cpu_us)
    ]


def limits_store_rows(name: str, closed: list[CellResult], cpu_us: dict[str, float]) -> list[BudgetRow]:
    off1, off32 = find(closed, PLAIN, 1), find(closed, PLAIN, 32)
    on1, on32 = find(closed, name, 1), find(closed, name, 32)
    paired = paired_losses(on32, off32)
    loss = statistics.median(paired) if paired else 1 - on32.rps / off32.rps
    added_cpu = cpu_us.get(name, math.nan) - cpu_us.get(PLAIN, math.nan)
    return [
        budget_row(name, LIMITS_ADDED_P50, on1.p50_ms - off1.p50_ms, f"{name} - {PLAIN}", on1, off1),
        info_row(name, "limits p99 @c=1 - off", on1.p99_ms - off1.p99_ms, "ms", f"vs {PLAIN}"),
        budget_row(
            name,
            LIMITS_THROUGHPUT_LOSS,
            loss * 100,
            f"median of {len(paired)} paired rounds of 1 - {name} / {PLAIN} rps @c=32",
            on32,
            off32,
        ),
        info_row(name, "limits tput loss, pooled", (1 - on32.rps / off32.rps) * 100, "%", "all rounds"),
        info_row(name, "limits CPU per request", added_cpu, "us", f"vs {PLAIN}"),
    ]


def telemetry_rows(closed: list[CellResult], cpu_us: dict[str, float]) -> list[BudgetRow]:
    """What publishing events costs: router CPU per request and c=32 throughput, events on vs off
    (the median of paired rounds; the pooled figure too), and what the durable log
    (events.durable) costs of that: events on vs on without it."""
    events_cpu, plain_cpu = cpu_us.get(EVENTS_VARIANT, math.nan), cpu_us.get(PLAIN, math.nan)
    volatile_cpu = cpu_us.get(VOLATILE_VARIANT, math.nan)
    with_events, without = find(closed, EVENTS_VARIANT, 32), find(closed, PLAIN, 32)
    paired = paired_losses(with_events, without)
    paired_log = paired_losses(with_events, find(closed, VOLATILE_VARIANT, 32))
    pooled = 1 - with_events.rps / without.rps
    cost = statistics.median(paired) if paired else pooled
    basis = f"median of {len(paired)} paired rounds of 1 - {EVENTS_VARIANT} / {PLAIN} rps @c=32"
    log_basis = f"median of {len(paired_log)} paired rounds of 1 - {EVENTS_VARIANT} / {VOLATILE_VARIANT}"
    return [
        info_row(
            EVENTS_VARIANT,
            "telemetry CPU cost",
            (events_cpu / plain_cpu - 1) * 100,
            "%",
            f"router CPU per request vs {PLAIN}",
        ),
        info_row(
            EVENTS_VARIANT,
            "durable log CPU per req",
            events_cpu - volatile_cpu,
            "us",
            f"router CPU per request vs {VOLATILE_VARIANT}",
        ),
        info_row(
            EVENTS_VARIANT,
            "durable log tput cost",
            statistics.median(paired_log) * 100 if paired_log else math.nan,
            "%",
            log_basis,
        ),
        info_row(EVENTS_VARIANT, "telemetry tput cost, pooled", pooled * 100, "%", "all rounds at once"),
        budget_row(EVENTS_VARIANT, TELEMETRY_COST, cost * 100, basis, with_events, without),
    ]
