"""What the commands print and write: output files written whole, JSON, a
run's counts and failures, its report and trace files, and tables of
resource statuses. Into a pipe nothing is folded, cut or coloured."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from protectflow.dag.outcomes import ResourceStatus
from protectflow.errors import ProtectflowError
from protectflow.executors import RunReport
from protectflow.states import NOT_RUN

__all__ = ["duration", "hook_counts", "print_failures", "print_json", "print_statuses", "say",
           "stdout_console", "timing", "write_output", "write_report_files"]

#: Into a pipe or a file, a table is as wide as its content, up to this.
_PIPE_WIDTH = 4000
#: Without -v, more not-run resources than this are a count, not rows.
_NOT_RUN_SHOWN = 10


def write_output(data: str | bytes, output: str | None) -> None:
    """Write ``data`` to stdout (no ``output``, or ``-``) or to the file
    ``output``, whole or not at all.

    Raises
    ------
    ProtectflowError
        When the file cannot be written.
    """
    if output is None or output == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = f"{output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
        os.replace(tmp, output)  # never a half-written file at OUTPUT
    except OSError as err:
        raise ProtectflowError(f"cannot write {output!r}: {err.strerror or err}; "
                               "give a path in a folder you can write to") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def print_json(data: Any, *, indent: int = 1, sort_keys: bool = True) -> None:
    """``data`` as JSON on stdout."""
    print(json.dumps(data, indent=indent, sort_keys=sort_keys))


def stdout_console() -> Console:
    """A console for tables on stdout: the terminal's width, or, into a pipe
    or a file, wide enough that nothing is folded or cut, and no colour."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=_PIPE_WIDTH, no_color=True, highlight=False)


def say(text: str) -> None:
    """A line on stderr; nothing if stderr is gone (the work goes on)."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def timing(args: argparse.Namespace, report: RunReport) -> str:
    """``in 19 s (the run 4.57 s, dask)``: the wall time of the whole command
    (start-up and teardown included: a dask cluster starts and stops), then
    the run's own time and its executor."""
    started = getattr(args, "started", None)
    if started is None:
        return f"in {duration(report.duration)} ({report.executor})"
    return (f"in {duration(time.monotonic() - started)} "
            f"(the run {duration(report.duration)}, {report.executor})")


def duration(seconds: float) -> str:
    """A duration for people: ``0.42 s``, ``12 s``, ``3 min 05 s``, ``2 h 01 min``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def hook_counts(report: RunReport) -> str:
    """``12 hooks: 9 succeeded, 1 failed, 2 cancelled`` (the states that occur)."""
    counts = [f"{n} {state}" for state, n in report.counts().items() if n]
    return f"{len(report.hooks)} hooks" + (f": {', '.join(counts)}" if counts else "")


def print_failures(report: RunReport, limit: int = 10) -> None:
    """The first ``limit`` failed hooks and their errors, on stderr."""
    failed = report.failed()
    for record in failed[:limit]:
        error = record.error
        say(f"  {record.state} {record.node}: "
            f"{error.type + ': ' + error.message if error else ''}")
    if len(failed) > limit:
        say(f"  ... and {len(failed) - limit} more (--report FILE has them all)")


def write_report_files(report: RunReport, args: argparse.Namespace) -> None:
    """Write the ``--report`` (JSON) and ``--trace`` (Chrome trace) files asked for.

    Raises
    ------
    ProtectflowError
        When a file cannot be written.
    """
    if args.report:
        write_output(report.dumps(), args.report)
    if args.trace:
        write_output(json.dumps(report.to_chrome_trace()) + "\n", args.trace)


def print_statuses(resources: Mapping[str, ResourceStatus], *,
                   everything: bool = True) -> None:
    """A table of each resource's status and reason, on stdout.

    Without ``everything``, only the resources that have a reason (failed,
    not run), and the not-run ones as a count when there are many of them
    (an interrupted run of a thousand resources is not a thousand rows)."""
    rows = sorted(resources.items())
    hidden = 0
    if not everything:
        rows = [(k, v) for k, v in rows if v.reason]
        not_run = sum(1 for _, v in rows if v.status == NOT_RUN)
        if not_run > _NOT_RUN_SHOWN:
            rows = [(k, v) for k, v in rows if v.status != NOT_RUN]
            hidden = not_run
    if rows:
        table = Table()
        for column in ("resource", "status", "reason"):
            table.add_column(column, overflow="fold")
        for key, value in rows:
            table.add_row(key, value.status, value.reason or "")
        stdout_console().print(table)
    if hidden:
        print(f"{hidden} resources not run (-v lists them)")
