"""``protectflow run``: a plan or a compiled HookDAG on an executor, keeping
no checkpoint (:func:`protectflow.operations.run`)."""

from __future__ import annotations

import argparse

from protectflow import operations
from protectflow.cli import results
from protectflow.cli.options import (
    Subparsers,
    add_executor_args,
    executor_from_args,
    load_parameters,
)
from protectflow.cli.outcome import INTERRUPTED
from protectflow.cli.output import (
    hook_counts,
    print_failures,
    print_json,
    say,
    timing,
    write_report_files,
)
from protectflow.cli.progress import progress
from protectflow.dag import OPERATIONS
from protectflow.errors import RunFailed
from protectflow.states import CANCELLED

__all__ = ["add_parsers", "run_command"]


def add_parsers(sub: Subparsers) -> None:
    """Add ``run`` to ``sub``."""
    p = sub.add_parser("run", help="run a plan (or a compiled hook DAG) on an executor")
    p.add_argument("plan", metavar="PLAN_OR_DAG", help="a plan, or a HookDAG .json file")
    p.add_argument("--operation", choices=OPERATIONS, help="for a plan (default: protect)")
    p.add_argument("--parameters", metavar="FILE",
                   help="YAML or JSON parameters keyed by TYPE or TYPE#ID, for a plan "
                   "(protect's are the plan's unless given; the others have none without it)")
    add_executor_args(p)
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """``protectflow run PLAN_OR_DAG``.

    Raises
    ------
    RunFailed
        When a hook failed (exit code 1).
    """
    parameters = (load_parameters(args.parameters, args.operation or "protect")
                  if args.parameters is not None else None)
    runnable = operations.prepare_run(args.plan, operation=args.operation, parameters=parameters)
    dag = runnable.dag
    executor, settings = executor_from_args(args)
    with progress(f"{dag.operation} ({executor.name})", quiet=args.quiet) as listener:
        listeners = (listener,) if listener is not None else ()
        report = operations.run(runnable, executor=executor, settings=settings,
                                listeners=listeners)
    write_report_files(report, args)
    if args.json:
        print_json(results.run_result(report), sort_keys=False)
    if report.state == CANCELLED:
        say(f"protectflow: interrupted: the {dag.operation} run stopped "
            f"({hook_counts(report)}); it kept no checkpoint: run it again")
        return INTERRUPTED
    if not report.ok:
        if not args.json:
            print(f"the {dag.operation} run failed: {hook_counts(report)}, "
                  f"{timing(args, report)}")
            print_failures(report)
        raise RunFailed(f"the {dag.operation} run failed: {len(report.failed())} hook(s) "
                        "failed (--report FILE keeps every hook's error)", report)
    if not args.json and not args.quiet:
        print(f"the {dag.operation} run succeeded: {len(dag.resources)} resources, "
              f"{len(report.hooks)} hooks, {timing(args, report)}")
    return 0
