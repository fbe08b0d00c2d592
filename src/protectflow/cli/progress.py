"""How far a run is, on stderr, while it runs: a live bar with its total
and ETA on a terminal; elsewhere (a log, a pipe) a plain line every
``$PROTECTFLOW_PROGRESS_INTERVAL`` seconds (10 by default), from a timer, so
that a long hook does not leave the log silent. Failures and retries are
printed as they happen either way.

Both count hooks and data: the bytes and files the plugins say they
processed (:mod:`protectflow.plugins.progress`), their throughput, and --
when the run's size is known beforehand (the previous checkpoint's, or a
scan) -- an ETA from bytes (:class:`DataProgress`): one large resource
holds one hook for most of the run, so a count of hooks would not move
while it is read, and an ETA from hooks would keep rising.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import attrs
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from protectflow.cli.output import say
from protectflow.executors import Event
from protectflow.executors.report import DASHBOARD
from protectflow.plugins.progress import watching
from protectflow.report.stats import human_size
from protectflow.states import FAILED_STATES, HOOK_STATES, RETRIED, RUN_STARTED

__all__ = ["INTERVAL_ENV", "DataProgress", "Listener", "dashboard_line", "hooks_total",
           "progress"]

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


@attrs.define
class DataProgress:
    """The progress of a run in hooks and data, a pure model: what is done
    at a time, the throughput, and an ETA.

    ``bytes_total`` is an estimate (None: unknown); bytes done beyond it make
    it unknown again rather than an ETA below zero. The ETA is the bytes
    left at the throughput so far, when the total is known; else from hooks.
    """

    start: float
    hooks_total: int | None = None
    hooks_done: int = 0
    failed: int = 0
    bytes_total: int | None = None
    bytes_done: int = 0
    files_done: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def add(self, nbytes: int, files: int = 0) -> None:
        """Count ``nbytes`` and ``files`` more processed (a plugin's sink)."""
        with self._lock:
            self.bytes_done += nbytes
            self.files_done += files

    def throughput(self, now: float) -> float | None:
        """Bytes per second so far; None before any byte."""
        elapsed = now - self.start
        return self.bytes_done / elapsed if self.bytes_done and elapsed > 0 else None

    def eta(self, now: float) -> float | None:
        """Seconds left: from bytes when the total is known and not passed,
        else from hooks; None when neither can say."""
        speed = self.throughput(now)
        if self.bytes_total and speed and self.bytes_done <= self.bytes_total:
            return (self.bytes_total - self.bytes_done) / speed
        if self.hooks_total and self.hooks_done and not self.bytes_total:
            elapsed = now - self.start
            return elapsed / self.hooks_done * (self.hooks_total - self.hooks_done)
        return None

    def data(self, now: float) -> str:
        """``1,204 files, 1.2 GiB of ~3.4 GiB (35%), 120.0 MiB/s``; empty
        before any data."""
        if not self.bytes_done and not self.files_done:
            return ""
        text = f"{self.files_done:,} files, {human_size(self.bytes_done)}"
        if self.bytes_total and self.bytes_done <= self.bytes_total:
            text += (f" of ~{human_size(self.bytes_total)} "
                     f"({100 * self.bytes_done / self.bytes_total:.0f}%)")
        speed = self.throughput(now)
        if speed:
            text += f", {human_size(speed)}/s"
        return text


@contextmanager
def progress(description: str, *, quiet: bool = False, estimate: int | None = None,
             scan: Callable[[], int | None] | None = None) -> Iterator[Listener | None]:
    """A run listener showing the run's progress on stderr (see the module);
    None when ``quiet``. ``estimate``: the bytes the run should process
    (the previous checkpoint's size), for an ETA from bytes; without one, on
    a terminal, ``scan`` finds them in a thread of its own while the run
    goes (a pre-scan of the sources: metadata only)."""
    if quiet:
        yield None
    elif sys.stderr.isatty():
        with _bar(description, estimate, None if estimate else scan) as listener:
            yield listener
    else:
        plain = PlainProgress(description, estimate=estimate)
        try:
            with watching(plain.model.add):
                yield plain.listener
        finally:
            plain.stop()


@contextmanager
def _bar(description: str, estimate: int | None,
         scan: Callable[[], int | None] | None) -> Iterator[Listener]:
    console = Console(stderr=True)
    model = DataProgress(time.monotonic(), bytes_total=estimate)
    with ExitStack() as stack:
        bar = stack.enter_context(Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            "{task.fields[data]}", TimeElapsedColumn(), "eta", TimeRemainingColumn(),
            console=console, transient=True))
        task = bar.add_task(description, total=None, data="")
        data = bar.add_task("data", total=estimate, data="", visible=False)

        def sink(nbytes: int, files: int) -> None:
            model.add(nbytes, files)
            # rich estimates the time left from the data task's speed
            bar.update(data, completed=model.bytes_done, visible=bool(estimate))
            bar.update(task, data=model.data(time.monotonic()))

        stack.enter_context(watching(sink))
        if scan is not None:
            threading.Thread(target=_prescan, args=(scan, model, bar, data), daemon=True,
                             name="protectflow-prescan").start()

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


def _prescan(scan: Callable[[], int | None], model: DataProgress, bar: Progress,
             data: TaskID) -> None:
    """Give the bar the total ``scan`` finds (nothing if it fails: the bar
    goes on counting hooks and bytes)."""
    try:
        total = scan()
    except Exception:
        return
    if total:
        model.bytes_total = total
        bar.update(data, total=total, visible=True)


class PlainProgress:
    """Progress as plain lines, one per interval, from a daemon timer thread."""

    def __init__(self, description: str, *, estimate: int | None = None) -> None:
        self.description = description
        self.interval = float(os.environ.get(INTERVAL_ENV) or 10)
        self.model = DataProgress(time.monotonic(), bytes_total=estimate)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._tick, name="protectflow-progress",
                                       daemon=True)
        self.thread.start()

    def listener(self, event: Event) -> None:
        """Count the hooks that end; print failures and retries."""
        total = hooks_total(event)
        if total is not None:
            self.model.hooks_total = total
        elif event.kind in HOOK_STATES and event.node is not None:
            self.model.hooks_done += 1
            self.model.failed += event.kind in FAILED_STATES
        if event.kind in _NOTEWORTHY:
            say(f"{event.kind} {event.node}: {event.message}")
        elif event.kind == DASHBOARD:
            say(dashboard_line(event))

    def line(self, now: float | None = None) -> str:
        """``protect: 350/1000 hooks done, 2 failed, 1,204 files, 1.2 GiB of
        ~3.4 GiB (35%), 120.0 MiB/s, 45 s elapsed, about 84 s left``."""
        now = time.monotonic() if now is None else now
        m = self.model
        total = "?" if m.hooks_total is None else str(m.hooks_total)
        text = f"{self.description}: {m.hooks_done}/{total} hooks done, {m.failed} failed"
        data = m.data(now)
        if data:
            text += f", {data}"
        text += f", {now - m.start:.0f} s elapsed"
        left = m.eta(now)
        if left is not None:
            text += f", about {left:.0f} s left"
        return text

    def _tick(self) -> None:
        while not self.stopped.wait(self.interval):
            say(self.line())

    def stop(self) -> None:
        """Stop the timer (no line after this returns)."""
        self.stopped.set()
        self.thread.join()
