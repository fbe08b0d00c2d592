"""``protectflow report ID [--run RUN] -o report.html``: a checkpoint and one
of its runs as one self-contained HTML page (:mod:`protectflow.report`)."""

from __future__ import annotations

import argparse
import sys

from protectflow.cli.banks import resolve_checkpoint
from protectflow.cli.options import Subparsers, add_bank_args
from protectflow.cli.output import write_output
from protectflow.report import build_report

__all__ = ["add_parsers"]


def add_parsers(sub: Subparsers) -> None:
    """Add ``report`` to ``sub``."""
    p = sub.add_parser("report", help="write a checkpoint and its last run as one HTML page")
    p.add_argument("checkpoint", metavar="ID", help="a checkpoint id, or its first characters")
    p.add_argument("--run", metavar="RUN",
                   help="the run to show: its id or first characters (default: the last run)")
    p.add_argument("-o", "--output", metavar="FILE", required=True,
                   help="the HTML file to write (- for stdout)")
    p.add_argument("--plan", metavar="PLAN", help="a plan file: its bank is the checkpoint's")
    add_bank_args(p)
    p.set_defaults(func=report_command)


def report_command(args: argparse.Namespace) -> int:
    """``protectflow report ID``."""
    store = resolve_checkpoint(args)
    checkpoint = store.get(args.checkpoint)
    write_output(build_report(checkpoint, run=args.run), args.output)
    if args.output != "-" and not args.quiet:
        print(f"report of checkpoint {checkpoint.id} written to {args.output}", file=sys.stderr)
    return 0
