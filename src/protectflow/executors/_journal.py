"""The run journal from the executors' side: what a journal must do, and
the group commit the loop writes it with, off the scheduling thread.

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
from typing import Protocol, runtime_checkable

import attrs

from protectflow.bank.catalog.journal import JournalEntry

__all__ = ["Flushed", "Journal", "JournalWriter", "LinkJournal"]


class Journal(Protocol):
    """Where a run records every hook's state changes, durably.

    ``record`` gets a batch of entries (:class:`JournalEntry`: ``node``,
    ``event`` -- started, succeeded, failed or timed_out --, ``attempt``,
    ``time``, and ``output``, ``new_resources`` and ``error`` when they apply)
    and returns once they are durable. The loop calls it from one thread at a
    time, and starts no hook that depends on a hook before that hook's entry
    is recorded (group commit: one call per batch of completions).
    """

    def record(self, entries: list[JournalEntry]) -> None: ...


@runtime_checkable
class LinkJournal(Journal, Protocol):
    """A journal that can also be written from where a hook runs (it pickles,
    and ``record_link`` needs no other writer's order): with one, a chain of
    hooks records each success before its next hook starts, so chains are
    run only with such a journal, or none."""

    def record_link(self, name: str, entries: list[JournalEntry]) -> None: ...


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
        self._entries: list[JournalEntry] = []
        self._gates: list[int] = []
        self._cond = threading.Condition()
        self._closing = False
        self._failed = False
        self._thread = threading.Thread(target=self._work, name="protectflow-journal",
                                        daemon=True)
        self._thread.start()

    def add(self, entry: JournalEntry, gate: int | None = None) -> None:
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
