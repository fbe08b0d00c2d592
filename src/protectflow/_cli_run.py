"""``protectflow run`` and the executor options every running command takes:
choosing the executor, limits, retries, the live progress, the summary, and
the report and trace files."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from protectflow.errors import ExecutorError

__all__ = ["add_executor_args", "executor_from_args", "run_command"]

_ENDS = frozenset(("succeeded", "failed", "timed_out", "upstream_failed", "cancelled"))


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that runs hooks."""
    p.add_argument("--executor", default="threads", help="serial, threads or dask")
    p.add_argument("--workers", type=int, metavar="N", help="threads, or dask worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running dask scheduler")
    p.add_argument("--keep-going", action="store_true",
                   help="run every hook not downstream of a failed one")
    p.add_argument("--limit", action="append", default=[], metavar="TYPE=N",
                   help="at most N hooks at once of a resource type or pool (repeatable)")
    p.add_argument("--retries", type=int, metavar="N", help="retries per hook")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds per hook attempt")
    p.add_argument("--report", metavar="FILE", help="write the run report (JSON) here")
    p.add_argument("--trace", metavar="FILE", help="write a Chrome/Perfetto trace here")


def executor_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The executor and the run options the executor flags ask for.

    Raises
    ------
    ExecutorError
        For an unknown executor, a bad ``--limit`` or ``--scheduler`` without dask.
    """
    from protectflow.executors import get_executor

    executor_options: dict[str, Any] = {}
    if args.workers is not None:
        if args.workers < 1:
            raise ExecutorError(f"bad --workers {args.workers}: give a number >= 1")
        executor_options["workers"] = args.workers
    if args.scheduler is not None:
        if args.executor != "dask":
            raise ExecutorError("--scheduler needs --executor dask")
        executor_options["scheduler"] = args.scheduler
    executor = get_executor(args.executor, **executor_options)
    options: dict[str, Any] = {"keep_going": args.keep_going}
    for name in ("retries", "timeout"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.limit:
        options["limits"] = parse_limits(args.limit)
    return executor, options


def parse_limits(items: Sequence[str]) -> dict[str, int]:
    limits: dict[str, int] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not name or not value.isdigit() or int(value) < 1:
            raise ExecutorError(
                f"bad --limit {item!r}: give it as TYPE_OR_POOL=N with N >= 1, "
                "e.g. --limit OS::Cinder::Volume=2"
            )
        limits[name] = int(value)
    return limits


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Any]:
    """A run listener that draws a live progress bar on a terminal (stderr),
    and prints failures and retries as they happen; ``None`` off a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def listener(event: Any) -> None:
            if event.kind in _ENDS and event.node is not None:
                bar.advance(task)
            if event.kind in ("failed", "timed_out", "retried"):
                console.print(f"{event.kind} {event.node}: {event.message}", highlight=False)

        yield listener


def print_summary(report: Any) -> None:
    """A run report's summary table (and its first failures), to stderr."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    table = Table(title=f"{report.operation} on {report.executor}: {report.state} "
                        f"in {report.duration:.2f} s")
    table.add_column("state")
    table.add_column("hooks", justify="right")
    for state, n in report.counts().items():
        if n:
            table.add_row(state, str(n))
    console.print(table)
    for record in report.failed()[:10]:
        error = record.error
        console.print(f"[red]{record.state}[/red] {record.node}: "
                      f"{error.type if error else ''}: {error.message if error else ''}",
                      markup=True, highlight=False)


def write_report_files(report: Any, args: argparse.Namespace) -> None:
    from protectflow.cli import write_output

    if args.report:
        write_output(report.dumps(), args.report)
    if args.trace:
        write_output(json.dumps(report.to_chrome_trace()) + "\n", args.trace)


def run_command(args: argparse.Namespace) -> int:
    """``protectflow run PLAN_OR_DAG``."""
    from protectflow._steps import check_limits
    from protectflow.errors import RunFailed
    from protectflow.executors import run_dag

    dag, pools = _load_for_run(args.plan, args.operation)
    executor, options = executor_from_args(args)
    check_limits(dag, options.get("limits", {}), pools)
    with progress(f"{dag.operation} ({executor.name})", len(dag.nodes)) as listener, \
            _scratch_checkpoint(dag) as checkpoint:
        listeners = [listener] if listener is not None else []
        report = run_dag(dag, executor, pools=pools, listeners=listeners,
                         checkpoint=checkpoint, **options)
    write_report_files(report, args)
    print_summary(report)
    if report.state == "cancelled":
        print("protectflow: interrupted", file=sys.stderr)
        return 130
    if report.state != "succeeded":
        bad = len(report.failed())
        raise RunFailed(f"the {dag.operation} run failed: {bad} hook(s) failed", report)
    return 0


@contextmanager
def _scratch_checkpoint(dag: Any) -> Iterator[Any]:
    """A checkpoint in a throw-away bank for the hooks of a protect ``run``:
    plugins that keep data in the bank work, and nothing outlives the run
    (``protect`` keeps checkpoints). The other operations need a checkpoint
    that holds data (``restore ID``...): their hooks get ``None`` here."""
    import tempfile

    if dag.operation != "protect":
        yield None
        return

    from protectflow.bank import Bank, CheckpointStore
    from protectflow.dag import jsonio
    from protectflow.operations import default_owner

    with tempfile.TemporaryDirectory(prefix="protectflow-run-") as folder:
        graph = {"resources": [r.to_json() for r in dag.resources],
                 "dependencies": [list(pair) for pair in dag.dependencies]}
        checkpoint = CheckpointStore(Bank(folder)).create(
            {"name": dag.plan or "run"}, graph, jsonio.fingerprint(dag), default_owner())
        try:
            yield checkpoint
        finally:
            checkpoint.release()


def _load_for_run(path: str, operation: str | None) -> tuple[Any, dict[str, list[str]]]:
    """A HookDAG file as it is, or a plan compiled (with its pools)."""
    from protectflow.compiler import compile_plan, load_plan
    from protectflow.dag import jsonio

    if path.endswith(".json") and _is_hookdag(path):
        dag = jsonio.load(path)
        if operation is not None and operation != dag.operation:
            raise ExecutorError(
                f"{path} is a {dag.operation} DAG; drop --operation {operation} or compile "
                f"the plan for {operation}"
            )
        return dag, {}
    plan = load_plan(path)
    return compile_plan(plan, operation or "protect"), dict(plan.pools)


def _is_hookdag(path: str) -> bool:
    """Whether ``path`` looks like a HookDAG file (its format names itself in
    the first lines; the loader checks the rest)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    return '"protectflow.hookdag"' in head
