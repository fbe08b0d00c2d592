"""``protectflow run``: a plan or a compiled HookDAG on an executor, keeping
no checkpoint (:func:`protectflow.operations.run`)."""

from __future__ import annotations

import argparse
import sys

from protectflow import operations
from protectflow.cli.options import Subparsers, add_executor_args, executor_from_args
from protectflow.cli.output import print_summary, progress, write_report_files
from protectflow.dag import OPERATIONS
from protectflow.errors import RunFailed
from protectflow.states import CANCELLED

__all__ = ["add_parsers", "run_command"]


def add_parsers(sub: Subparsers) -> None:
    """Add ``run`` to ``sub``."""
    p = sub.add_parser("run", help="run a plan (or a compiled hook DAG) on an executor")
    p.add_argument("plan", metavar="PLAN_OR_DAG", help="a plan, or a HookDAG .json file")
    p.add_argument("--operation", choices=OPERATIONS, help="for a plan (default: protect)")
    add_executor_args(p)
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """``protectflow run PLAN_OR_DAG``.

    Raises
    ------
    RunFailed
        When a hook failed (exit code 1).
    """
    # Compiled first: the progress bar counts the DAG's hooks.
    runnable = operations.prepare_run(args.plan, operation=args.operation)
    dag = runnable.dag
    executor, options = executor_from_args(args)
    with progress(f"{dag.operation} ({executor.name})", len(dag.nodes)) as listener:
        listeners = [listener] if listener is not None else []
        report = operations.run(runnable, executor=executor, listeners=listeners, **options)
    write_report_files(report, args)
    print_summary(report)
    if report.state == CANCELLED:
        print("protectflow: interrupted", file=sys.stderr)
        return 130
    if not report.ok:
        bad = len(report.failed())
        raise RunFailed(f"the {dag.operation} run failed: {bad} hook(s) failed", report)
    return 0
