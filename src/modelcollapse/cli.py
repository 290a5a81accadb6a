"""`python -m modelcollapse ...` / `modelcollapse ...`: every experiment step as a command.

Snakemake rules call exactly these commands, so running one by hand gives the same files.
Each family's subcommands live in `modelcollapse.commands.<family>`; adding a family is one
module with `register(subparsers)` and one entry in FAMILIES.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules under modelcollapse.commands, in the order `--help` lists them.
FAMILIES = ("paper", "gaussian", "discrete", "gmm", "vae", "lm")
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelcollapse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for family in FAMILIES:
        importlib.import_module(f"modelcollapse.commands.{family}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        args.func(args, argv)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"modelcollapse {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return 0
