"""The ``protectflow`` command: a thin shell over the library.

Each command group lives in a module of its own (:mod:`.graph`: compile,
validate, plugins; :mod:`.run`; :mod:`.operations`: protect, restore, verify,
copy, delete, resume; :mod:`.checkpoints`; :mod:`.protectables`; :mod:`.key`), and
each command is a call into the library's public API. Exit codes: 0 success, 1 an
operation ran and failed, 2 bad input (a plan, a DAG file, a parameter, an option), 130
interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from protectflow.cli import checkpoints, graph, key, operations, protectables, run
from protectflow.errors import ProtectflowError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = argparse.ArgumentParser(
        prog="protectflow",
        description="Protect, restore, verify, copy and delete a graph of resources.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (graph, run, operations, checkpoints, protectables, key):
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ProtectflowError as err:
        print(f"protectflow: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("protectflow: interrupted", file=sys.stderr)
        return 130
    return code
