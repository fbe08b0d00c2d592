"""Waiting in tests: for readiness, never for a clock of the test's own.

A test that needs something to start or to happen -- a process, a cluster, a
worker, a line of output, a file -- waits until it is there, however slow or
busy the machine. The one clock is pytest-timeout's limit per test
(``timeout`` in pyproject.toml; ``PYTEST_TIMEOUT=900 pytest`` or
``pytest --timeout 900`` on a slower machine still), which ends a test that
waits for ever and shows where it waited.

Where the code needs a bound anyway -- a helper thread or child process that
must not outlive its test, a read from a queue a dead process would never
fill -- the bound is that same limit, :data:`LIMIT`. A wait that *is* the
behaviour under test (a lease running out, a hook's ``--timeout``) is no
readiness wait: those tests prove their point by the order of events.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterable
from multiprocessing.process import BaseProcess
from typing import Any

__all__ = ["LIMIT", "queue_get", "wait_until"]

#: pytest-timeout's limit per test, in seconds (None: no limit); set from the
#: run's settings by ``tests/conftest.py``.
LIMIT: float | None = 300.0


def wait_until(predicate: Callable[[], object], what: str, *, every: float = 0.02) -> None:
    """Poll ``predicate`` until it is true; ``what`` says what is awaited.

    No deadline of its own: pytest-timeout ends a test whose awaited thing
    never comes, and its traceback shows the call, ``what`` included.
    """
    while not predicate():
        time.sleep(every)


def queue_get(results: Any, procs: Iterable[BaseProcess]) -> Any:
    """The next item of a multiprocessing ``results`` queue that ``procs``
    fill, as soon as there is one.

    Raises
    ------
    AssertionError
        If every process ended and the queue is empty (one died before it
        put its result), naming their exit codes.
    """
    procs = list(procs)
    while True:
        try:
            return results.get(timeout=0.1)
        except queue.Empty:
            if all(p.exitcode is not None for p in procs):
                try:  # a result put just before its process ended
                    return results.get(timeout=0.1)
                except queue.Empty:
                    codes = [p.exitcode for p in procs]
                    raise AssertionError(f"the processes ended with {codes} and put "
                                         "no result") from None
