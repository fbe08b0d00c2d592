"""Run journals: every hook's start and end, recorded durably in the checkpoint.

One operation run writes one journal; a resumed run writes a new one that
names the run it resumes. In the bank, under ``checkpoints/ID/``::

    journal/<RUN>/meta            what the run was for: operation, DAG and plan
                                  fingerprints, plugin versions, executor, owner,
                                  and the run it resumes (or null)
    journal/<RUN>/e/<SEQ>         one batch of entries (a JSON list), SEQ = 0, 1...
    journal/<RUN>/w/<LINK>        entries a worker recorded inside a chain of
                                  hooks, before starting the next one
    journal/<RUN>/end             how the run ended, when it did

Every entry is a :class:`JournalEntry`: the executors build them (see
:mod:`protectflow.executors.invoke`), this module stores and reads them back.

``RUN`` sorts by start time. Each object is written whole and atomically
(:meth:`Bank.update_object` fsyncs on a local folder), so a crash loses at most
the batch being written, never half of one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypedDict, cast

import attrs

from protectflow import _faults
from protectflow._util import now_iso
from protectflow.bank.catalog.checkpoint import Checkpoint
from protectflow.bank.catalog.runs import new_run_id
from protectflow.errors import BankError
from protectflow.states import FAILED, STARTED, SUCCEEDED, TIMED_OUT

__all__ = ["BankJournal", "JournalEntry", "JournalRun", "read_journal"]

JOURNAL_VERSION = 1
#: Events that end an attempt; ``succeeded`` is the one a resumed run reuses.
END_EVENTS = frozenset((SUCCEEDED, FAILED, TIMED_OUT))


class _Entry(TypedDict):
    node: str
    event: str
    attempt: int
    time: float


class JournalEntry(_Entry, total=False):
    """One entry of a run journal, as stored (a JSON object).

    A start (``event`` is ``started``) holds ``node``, ``event``, ``attempt``
    and ``time``; an end (``succeeded``, ``failed`` or ``timed_out``) adds
    ``worker``, and ``output`` and ``new_resources`` for a success, ``error``
    and ``retrying`` otherwise, and ``status_updates`` when the attempt
reported resource statuses (restore, verify, copy). ``inexact`` marks a success whose output would
    not go into JSON: its ``output`` and ``new_resources`` are stored as their
    ``repr``, and a resume runs that hook again.
    """

    worker: str
    output: Any
    new_resources: dict[str, Any] | None
    error: dict[str, str] | None
    retrying: bool
    inexact: bool
    status_updates: list[dict[str, Any]]


class BankJournal:
    """The journal of one run, written into ``checkpoint``.

    Use :meth:`start` to create one; pass it as the ``journal`` run option.
    """

    def __init__(self, checkpoint: Checkpoint, run_id: str, meta: dict[str, Any]) -> None:
        self.checkpoint, self.run_id, self.meta = checkpoint, run_id, meta
        self.prefix = f"{checkpoint.prefix}journal/{run_id}/"
        self._seq = 0
        self._ended = 0  # attempts ended, for the fault-injection test hook

    @classmethod
    def start(cls, checkpoint: Checkpoint, meta: Mapping[str, Any]) -> BankJournal:
        """Write a new run's ``meta`` and return its journal.

        Raises
        ------
        BankError
            If the bank refuses the write.
        """
        run_id = new_run_id()
        data = {"version": JOURNAL_VERSION, "run": run_id, "started_at": now_iso(), **meta}
        checkpoint.bank.update_object(f"{checkpoint.prefix}journal/{run_id}/meta", data)
        return cls(checkpoint, run_id, data)

    def record(self, entries: list[JournalEntry]) -> None:
        """Write ``entries`` as the next batch, atomically and durably.

        An entry whose output will not go into JSON is kept as its ``repr``
        and marked ``inexact``: a resumed run runs that hook again.

        Raises
        ------
        BankError
            If the bank refuses the write.
        """
        ended = self._ended + sum(e["event"] in END_EVENTS for e in entries)
        _faults.before_journal(ended)
        batch = [_jsonable(e) for e in entries]
        self.checkpoint.bank.update_object(f"{self.prefix}e/{self._seq:012d}", batch)
        self._seq += 1
        self._ended = ended
        _faults.after_journal(ended)

    def record_link(self, name: str, entries: list[JournalEntry]) -> None:
        """Write ``entries`` from wherever a chain of hooks runs (a dask worker
        in another process: a journal pickles with its checkpoint), durably,
        under a ``name`` of the writer's own.

        Raises
        ------
        BankError
            If the bank refuses the write.
        """
        batch = [_jsonable(e) for e in entries]
        self.checkpoint.bank.update_object(f"{self.prefix}w/{name}", batch)

    def finish(self, state: str) -> None:
        """Record how the run ended (``succeeded``, ``failed``, ``cancelled``)."""
        self.checkpoint.bank.update_object(self.prefix + "end",
                                           {"state": state, "at": now_iso()})


def _jsonable(entry: JournalEntry) -> JournalEntry:
    try:
        json.dumps(entry)
        return entry
    except (TypeError, ValueError):
        fixed: dict[str, Any] = {k: v for k, v in entry.items()
                                 if k not in ("output", "new_resources")}
        for key in ("output", "new_resources"):
            if entry.get(key) is not None:
                fixed[key] = repr(entry.get(key))  # kept to read, never taken as a result
        fixed["inexact"] = True
        return cast(JournalEntry, fixed)


def _entries(key: str, batch: Any) -> list[JournalEntry]:
    """The entries of the batch stored at ``key``, checked for the keys
    every reader relies on (a bank is untrusted storage)."""
    if not isinstance(batch, list):
        raise BankError(f"journal batch {key!r} is not a list of entries")
    for entry in batch:
        if not (isinstance(entry, dict) and isinstance(entry.get("node"), str)
                and isinstance(entry.get("event"), str)):
            raise BankError(f"journal batch {key!r} holds an entry without a node and an "
                            f"event: {entry!r:.200}")
    return cast(list[JournalEntry], batch)


@attrs.frozen
class JournalRun:
    """One run's journal as read back: its ``meta``, its entries in order,
    and how it ended (``None`` if it did not: a crash)."""

    run_id: str
    meta: dict[str, Any]
    entries: tuple[JournalEntry, ...]
    end: dict[str, Any] | None

    def succeeded(self) -> dict[str, JournalEntry]:
        """Node id -> the entry of its success, for exact successes only."""
        return {e["node"]: e for e in self.entries
                if e["event"] == SUCCEEDED and not e.get("inexact")}

    def started(self) -> set[str]:
        """The nodes this run started (at least once)."""
        return {e["node"] for e in self.entries if e["event"] == STARTED}


def read_journal(checkpoint: Checkpoint) -> list[JournalRun]:
    """Every run journal of ``checkpoint``, oldest first.

    Raises
    ------
    BankError
        If a journal object cannot be read.
    """
    base = checkpoint.prefix + "journal/"
    bank = checkpoint.bank
    runs: dict[str, dict[str, Any]] = {}
    for key in bank.iter_objects(base):
        run_id, _, rest = key[len(base):].partition("/")
        run = runs.setdefault(run_id, {"meta": None, "entries": [], "end": None})
        if rest == "meta":
            run["meta"] = bank.get_object(key)
        elif rest == "end":
            run["end"] = bank.get_object(key)
        elif rest.startswith(("e/", "w/")):
            run["entries"].extend(_entries(key, bank.get_object(key)))
    return [JournalRun(run_id, run["meta"], tuple(run["entries"]), run["end"])
            for run_id, run in sorted(runs.items()) if isinstance(run["meta"], dict)]
