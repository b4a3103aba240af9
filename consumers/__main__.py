"""`python -m consumers {costs,health,quality,all} [...]`: the same as `router-service consume`."""

from __future__ import annotations

import argparse
import logging
import sys

from consumers.main import add_arguments, run_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumers", description="run aggregation consumers")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
