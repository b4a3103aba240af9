"""`router-service`: serve | sim | up | consume.

router-service serve --config FILE [--workers N]   the router alone
router-service sim [--port P] [--preset NAME | --config FILE]   one simulated provider
router-service up                                   the embedded stack (see stack.py)
router-service consume {health,costs,quality,all}   the event consumers (see consumers/README.md)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from consumers.main import add_arguments as add_consumer_arguments


def build_parser() -> argparse.ArgumentParser:
    """The command line; deploy/ manifests' commands are checked against it (tests/deploy)."""
    parser = argparse.ArgumentParser(prog="router-service", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the router")
    serve.add_argument(
        "--config", type=Path, default=os.environ.get("ROUTER_CONFIG"), help="YAML config (or ROUTER_CONFIG)"
    )
    serve.add_argument(
        "--workers", type=int, default=None, help="processes sharing the port (default: server.workers)"
    )

    sim = sub.add_parser("sim", help="run a simulated OpenAI-compatible provider")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8001)
    group = sim.add_mutually_exclusive_group()
    group.add_argument("--preset", default="fast", help="instant | fast | cheap | premium")
    group.add_argument("--config", type=Path, help="sim YAML config (per-model profiles)")
    sim.add_argument("--seed", type=int, default=None)

    up = sub.add_parser("up", help="run the embedded stack: simulated providers and the router")
    up.add_argument(
        "--config", type=Path, default=None, help="router config template (default: config/embedded.yaml)"
    )
    up.add_argument("--port", type=int, default=50051, help="router gRPC port")

    consume = sub.add_parser(
        "consume", help="aggregate router events into health/cost/quality snapshot topics"
    )
    add_consumer_arguments(consume)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "consume" and args.kind == "all" and (args.group_id or args.snapshot_topic):
        parser.error("--group-id and --snapshot-topic name one job's; they cannot apply to 'all'")
    if args.command == "consume":
        return _consume(args)
    from router_service.settings import ConfigError

    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"router-service: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from router_service.app import configure_logging
    from router_service.settings import ConfigError

    configure_logging()
    if args.command == "serve":
        if args.config is None:
            raise ConfigError("no config: pass --config FILE or set ROUTER_CONFIG")
        from router_service.app import main_serve

        return main_serve(args.config, args.workers)
    if args.command == "sim":
        return _sim(args)
    if args.command == "up":
        from router_launcher.stack import run_stack

        return run_stack(args.config, args.port)
    raise AssertionError(args.command)


def _consume(args: argparse.Namespace) -> int:
    # No router_service import (~0.6 s at start): a restarted consumer's catch-up waits on it.
    from consumers import main as consumers_main

    consumers_main.configure_logging()
    try:
        return consumers_main.run_from_args(args)
    except KeyboardInterrupt:
        return 130


def _sim(args: argparse.Namespace) -> int:
    from router_service.sim.config import load_sim_config
    from router_service.sim.presets import preset_config
    from router_service.sim.server import run_sim

    config = load_sim_config(args.config) if args.config else preset_config(args.preset, seed=args.seed)
    print(f"sim: OpenAI-compatible provider on http://{args.host}:{args.port}/v1", flush=True)
    asyncio.run(run_sim(host=args.host, port=args.port, config=config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
