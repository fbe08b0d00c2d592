"""What the commands print and write: output files written whole, JSON, the
live progress of a run, its summary, its report and trace files, and tables
of resource statuses."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from protectflow.errors import ProtectflowError
from protectflow.executors import Event, RunReport
from protectflow.states import FAILED_STATES, HOOK_STATES, RETRIED

__all__ = ["print_json", "print_statuses", "print_summary", "progress", "stdout_console",
           "write_output", "write_report_files"]

#: A run listener, as :class:`~protectflow.executors.RunOptions` takes them.
Listener = Callable[[Event], None]

#: Events the progress prints as they happen.
_NOTEWORTHY = FAILED_STATES | {RETRIED}


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
    """A console for tables on stdout: the terminal's width, or 160 columns
    into a pipe or a file (rich would fold long ids at 80)."""
    return Console(width=None if sys.stdout.isatty() else 160)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[Listener | None]:
    """A run listener that draws a live progress bar on a terminal (stderr),
    and prints failures and retries as they happen; ``None`` off a terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def listener(event: Event) -> None:
            if event.kind in HOOK_STATES and event.node is not None:
                bar.advance(task)
            if event.kind in _NOTEWORTHY:
                console.print(f"{event.kind} {event.node}: {event.message}", highlight=False)

        yield listener


def print_summary(report: RunReport) -> None:
    """A run report's summary table (and its first failures), to stderr."""
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


def print_statuses(resources: Mapping[str, Mapping[str, Any]]) -> None:
    """A table of each resource's status and reason, on stdout."""
    if not resources:
        return
    table = Table()
    for column in ("resource", "status", "reason"):
        table.add_column(column)
    for key, value in sorted(resources.items()):
        table.add_row(key, value["status"], value.get("reason") or "")
    stdout_console().print(table)
