"""How far a run is, on stderr, while it runs: a live bar with its total
and ETA on a terminal; elsewhere (a log, a pipe) a plain line every
``$PROTECTFLOW_PROGRESS_INTERVAL`` seconds (10 by default), from a timer, so
that a long hook does not leave the log silent. Failures and retries are
printed as they happen either way."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from protectflow.cli.output import say
from protectflow.executors import Event
from protectflow.executors.report import DASHBOARD
from protectflow.states import FAILED_STATES, HOOK_STATES, RETRIED, RUN_STARTED

__all__ = ["INTERVAL_ENV", "Listener", "dashboard_line", "hooks_total", "progress"]

#: A run listener, as :class:`~protectflow.executors.RunOptions` takes them.
Listener = Callable[[Event], None]

INTERVAL_ENV = "PROTECTFLOW_PROGRESS_INTERVAL"
#: Events printed as they happen.
_NOTEWORTHY = FAILED_STATES | {RETRIED}


def dashboard_line(event: Event) -> str:
    """The line that gives a dask run's dashboard."""
    return f"protectflow: the dask dashboard is at {event.message}"


def hooks_total(event: Event) -> int | None:
    """The number of hooks of a run, from its ``run_started`` event; None for
    any other event."""
    return event.total if event.kind == RUN_STARTED else None


@contextmanager
def progress(description: str, *, quiet: bool = False) -> Iterator[Listener | None]:
    """A run listener showing the run's progress on stderr (see the module);
    None when ``quiet``."""
    if quiet:
        yield None
    elif sys.stderr.isatty():
        with _bar(description) as listener:
            yield listener
    else:
        plain = PlainProgress(description)
        try:
            yield plain.listener
        finally:
            plain.stop()


@contextmanager
def _bar(description: str) -> Iterator[Listener]:
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), "eta", TimeRemainingColumn(), console=console, transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def listener(event: Event) -> None:
            total = hooks_total(event)
            if total is not None:
                bar.update(task, total=total)
            elif event.kind in HOOK_STATES and event.node is not None:
                bar.advance(task)
            if event.kind in _NOTEWORTHY:
                console.print(f"{event.kind} {event.node}: {event.message}", highlight=False,
                              markup=False)
            elif event.kind == DASHBOARD:
                console.print(dashboard_line(event), highlight=False, markup=False)

        yield listener


class PlainProgress:
    """Progress as plain lines, one per interval, from a daemon timer thread."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.interval = float(os.environ.get(INTERVAL_ENV) or 10)
        self.start = time.monotonic()
        self.total: int | None = None
        self.done = 0
        self.failed = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._tick, name="protectflow-progress",
                                       daemon=True)
        self.thread.start()

    def listener(self, event: Event) -> None:
        """Count the hooks that end; print failures and retries."""
        total = hooks_total(event)
        if total is not None:
            self.total = total
        elif event.kind in HOOK_STATES and event.node is not None:
            self.done += 1
            self.failed += event.kind in FAILED_STATES
        if event.kind in _NOTEWORTHY:
            say(f"{event.kind} {event.node}: {event.message}")
        elif event.kind == DASHBOARD:
            say(dashboard_line(event))

    def line(self) -> str:
        """``protect: 350/1000 hooks done, 2 failed, 45 s elapsed, about 84 s left``."""
        elapsed = time.monotonic() - self.start
        total = "?" if self.total is None else str(self.total)
        text = (f"{self.description}: {self.done}/{total} hooks done, {self.failed} failed, "
                f"{elapsed:.0f} s elapsed")
        if self.total and self.done:
            text += f", about {elapsed / self.done * (self.total - self.done):.0f} s left"
        return text

    def _tick(self) -> None:
        while not self.stopped.wait(self.interval):
            say(self.line())

    def stop(self) -> None:
        """Stop the timer (no line after this returns)."""
        self.stopped.set()
        self.thread.join()
