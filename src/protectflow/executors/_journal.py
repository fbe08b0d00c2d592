"""Group commit of a run's journal, off the scheduling thread.

The loop hands entries over as hooks start and finish; one writer thread
records everything pending in one :meth:`Journal.record` call, then tells the
loop (through its completion queue) which successes are now durable, and only
then does the loop release their dependents. While a batch is being written
the next one gathers, so the cost of a durable write is paid once per batch,
and hooks whose predecessors are already recorded keep starting meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import attrs

from protectflow.executors.options import Journal

__all__ = ["Flushed", "JournalWriter"]


@attrs.frozen
class Flushed:
    """A batch is durable: ``gates`` are the node indices it releases;
    ``error`` is set when the journal could not record it."""

    gates: tuple[int, ...]
    error: BaseException | None = None


class JournalWriter:
    """Records entries in ``journal`` from a thread of its own; ``notify``
    gets a :class:`Flushed` after each batch."""

    def __init__(self, journal: Journal, notify: Callable[[Flushed], None]) -> None:
        self.journal, self.notify = journal, notify
        self._entries: list[dict[str, Any]] = []
        self._gates: list[int] = []
        self._cond = threading.Condition()
        self._closing = False
        self._failed = False
        self._thread = threading.Thread(target=self._work, name="protectflow-journal",
                                        daemon=True)
        self._thread.start()

    def add(self, entry: dict[str, Any], gate: int | None = None) -> None:
        """Queue ``entry``; ``gate`` is a node whose dependents wait for it."""
        with self._cond:
            self._entries.append(entry)
            if gate is not None:
                self._gates.append(gate)
            self._cond.notify()

    def close(self) -> None:
        """Record what is left, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._entries and not self._closing:
                    self._cond.wait()
                if not self._entries:
                    return
                entries, self._entries = self._entries, []
                gates, self._gates = tuple(self._gates), []
            error: BaseException | None = None
            if not self._failed:  # after a failure, nothing more is durable
                try:
                    self.journal.record(entries)
                except BaseException as err:  # carried to the loop, raised there
                    error, self._failed = err, True
            self.notify(Flushed(gates, error or (_LOST if self._failed else None)))


_LOST = RuntimeError("an earlier journal write failed")
