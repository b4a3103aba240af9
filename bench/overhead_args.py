"""The overhead bench's command line: its flags, which of them go together, the output file and
the cell sizes each mode implies (bench/overhead.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import overhead_variants as variants
from bench.overhead_cells import Params
from bench.overhead_variants import DOOR, FULL, LIMITS, TELEMETRY

RESULTS = Path(__file__).resolve().parent / "results"
ROUNDS_DEFAULT = 5
FOCUSED_ROUNDS = 20  # the focused modes: more, shorter rounds (pairing wants many)
# Each mode writes its own results file.
OUTPUTS = {
    FULL: RESULTS / "overhead.json",
    TELEMETRY: RESULTS / "telemetry_cost.json",
    DOOR: RESULTS / "openai_door_overhead.json",
    LIMITS: RESULTS / "limits_overhead.json",
}


def parse_args(argv: list[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    add_load_args(parser)
    add_row_args(parser)
    add_mode_args(parser)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    check_modes(parser, args)
    if args.output is None:
        args.output = OUTPUTS[mode_of(args)]
        if args.baseline is not None:  # an A/B run keeps the mode's own file as it was
            args.output = args.output.with_name(f"{args.output.stem}_vs_{args.baseline_label}.json")
    return args


def add_load_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="about 1/5 of the default requests")
    parser.add_argument("--requests", type=int, help="requests per cell (both concurrencies)")
    parser.add_argument("--warmup", type=int, help="warm-up requests per cell (default 200, --quick 50)")
    parser.add_argument("--open-loop-seconds", type=float, help="open-loop duration (default 5, --quick 2)")
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS_DEFAULT, help="interleaved rounds per cell (default 5)"
    )


def add_row_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--router-config-extra",
        metavar="YAML",
        help="YAML mapping (or @file) deep-merged into the router config as one more router row",
    )
    parser.add_argument("--router-config-extra-name", default="router/extra", help="label of that row")
    parser.add_argument(
        "--no-events", action="store_true", help="skip the telemetry-on row (no embedded Kafka broker)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help=f"a source tree (git archive of a commit) to serve {variants.PLAIN} and "
        f"{variants.EVENTS_VARIANT} from as well, as rows '<row>@LABEL' in the same rounds, with "
        "after/base rows (default output: <mode's file>_vs_LABEL.json)",
    )
    parser.add_argument("--baseline-label", default="base", help="suffix of the baseline rows")
    parser.add_argument(
        "--pin-router",
        action="store_true",
        help="routers alone on CPU 0, everything else (broker, load, sim) on CPU 1",
    )


def add_mode_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--telemetry-only",
        action="store_true",
        help=f"only {variants.PLAIN} and {variants.EVENTS_VARIANT} at c=32: what events cost, in more, "
        "shorter rounds "
        "(default 20 rounds of 1000 requests; writes bench/results/telemetry_cost.json)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="with --telemetry-only: repeat with fresh processes, report medians",
    )
    parser.add_argument(
        "--no-auth", action="store_true", help=f"skip the {variants.AUTH_VARIANT} row (virtual keys)"
    )
    parser.add_argument(
        "--no-door", action="store_true", help=f"skip the {variants.DOOR_VARIANT} row (OpenAI HTTP)"
    )
    parser.add_argument(
        "--door-only",
        action="store_true",
        help=f"only {variants.DOOR_VARIANT} and {variants.PLAIN} at c=1 and c=32, closed loop, in more, "
        "shorter rounds "
        "(default 20; writes bench/results/openai_door_overhead.json)",
    )
    parser.add_argument(
        "--limits-only",
        action="store_true",
        help=f"only {variants.PLAIN}, {variants.LIMITS_VARIANT} and {variants.LIMITS_REDIS_VARIANT} "
        "(a real redis-server on loopback) "
        "at c=1 and c=32, closed loop, in more, shorter rounds (default 20; writes "
        "bench/results/limits_overhead.json)",
    )


def check_modes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses flags that contradict each other; a focused mode turns off the rows it does not
    measure (no broker, no key file, no door router)."""
    if args.telemetry_only and args.no_events:
        parser.error("--telemetry-only needs the events row")
    if args.runs > 1 and not args.telemetry_only:
        parser.error("--runs is for --telemetry-only")
    if args.door_only and (args.telemetry_only or args.no_door):
        parser.error("--door-only measures the door alone (not with --telemetry-only or --no-door)")
    if args.door_only:
        args.no_events = args.no_auth = True
    if args.limits_only and (args.telemetry_only or args.door_only):
        parser.error("--limits-only measures governance alone")
    if args.limits_only:
        args.no_events = args.no_auth = args.no_door = True
    if args.baseline is not None and not (args.baseline / "router_service").is_dir():
        parser.error(f"--baseline {args.baseline}: no router_service/ there")
    if "@" in args.baseline_label or "/" in args.baseline_label:
        parser.error("--baseline-label: no '@' or '/'")


def mode_of(args: argparse.Namespace) -> str:
    """The one mode the flags select (check_modes has refused combinations)."""
    if args.telemetry_only:
        return TELEMETRY
    if args.door_only:
        return DOOR
    return LIMITS if args.limits_only else FULL


def params_from(args: argparse.Namespace) -> Params:
    scale = 5 if args.quick else 1
    if mode_of(args) != FULL:
        return focused_params(args, scale)
    return Params(
        requests_c1=args.requests or 1000 // scale,
        requests_c32=args.requests or 2000 // scale,
        warmup=args.warmup if args.warmup is not None else (50 if args.quick else 200),
        open_loop_s=args.open_loop_seconds or (2.0 if args.quick else 5.0),
        rounds=max(1, args.rounds),
    )


def focused_params(args: argparse.Namespace, scale: int) -> Params:
    """One comparison alone, closed loop only: telemetry at c=32 (1000 requests a round), the door
    and the limits at c=1 and c=32 (100 and 400 a round)."""
    rounds = args.rounds if args.rounds != ROUNDS_DEFAULT else FOCUSED_ROUNDS
    telemetry = args.telemetry_only
    per_round_c32, warmup = (1000, 500) if telemetry else (400, 200)
    return Params(
        requests_c1=0 if telemetry else args.requests or rounds * 100 // scale,
        requests_c32=args.requests or rounds * per_round_c32 // scale,
        warmup=args.warmup if args.warmup is not None else warmup,
        open_loop_s=0.0,
        rounds=max(1, rounds),
        concurrencies=(32,) if telemetry else (1, 32),
    )
