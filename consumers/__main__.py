"""`python -m consumers {costs,health,quality,all} [...]`: the same as `router-service consume`."""

from __future__ import annotations

import argparse
import sys

from consumers.main import add_arguments, configure_logging, run_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumers", description="run aggregation consumers")
    add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging()
    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
