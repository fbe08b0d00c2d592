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

``RUN`` sorts by start time. Each object is written whole and atomically
(:meth:`Bank.update_object` fsyncs on a local folder), so a crash loses at most
the batch being written, never half of one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from protectflow import _faults
from protectflow.bank.checkpoint import Checkpoint
from protectflow.bank.runs import new_run_id, now_iso
from protectflow.errors import BankError
from protectflow.states import FAILED_STATES, STARTED, SUCCEEDED

__all__ = ["BankJournal", "JournalRun", "read_journal"]

JOURNAL_VERSION = 1
#: Events that end an attempt; ``succeeded`` is the one a resumed run reuses.
END_EVENTS = frozenset((SUCCEEDED, *FAILED_STATES))


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

    def record(self, entries: list[dict[str, Any]]) -> None:
        """Write ``entries`` as the next batch, atomically and durably.

        An entry whose output will not go into JSON is kept as its ``repr``
        and marked ``inexact``: a resumed run runs that hook again.
        """
        ended = self._ended + sum(e["event"] in END_EVENTS for e in entries)
        _faults.before_journal(ended)
        batch = [_jsonable(e) for e in entries]
        self.checkpoint.bank.update_object(f"{self.prefix}e/{self._seq:012d}", batch)
        self._seq += 1
        self._ended = ended
        _faults.after_journal(ended)

    def record_link(self, name: str, entries: list[dict[str, Any]]) -> None:
        """Write ``entries`` from wherever a chain of hooks runs (a dask worker
        in another process: a journal pickles with its checkpoint), durably,
        under a ``name`` of the writer's own.
        """
        batch = [_jsonable(e) for e in entries]
        self.checkpoint.bank.update_object(f"{self.prefix}w/{name}", batch)

    def finish(self, state: str) -> None:
        """Record how the run ended (``succeeded``, ``failed``, ``cancelled``)."""
        self.checkpoint.bank.update_object(self.prefix + "end",
                                           {"state": state, "at": now_iso()})


def _jsonable(entry: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(entry)
        return entry
    except (TypeError, ValueError):
        fixed = {k: v for k, v in entry.items() if k not in ("output", "new_resources")}
        for key in ("output", "new_resources"):
            if entry.get(key) is not None:
                fixed[key] = repr(entry[key])
        fixed["inexact"] = True
        return fixed


@attrs.frozen
class JournalRun:
    """One run's journal as read back: its ``meta``, its entries in order,
    and how it ended (``None`` if it did not: a crash)."""

    run_id: str
    meta: dict[str, Any]
    entries: tuple[dict[str, Any], ...]
    end: dict[str, Any] | None

    def succeeded(self) -> dict[str, dict[str, Any]]:
        """Node id -> the entry of its success, for exact successes only."""
        return {e["node"]: e for e in self.entries
                if e.get("event") == SUCCEEDED and not e.get("inexact")}

    def started(self) -> set[str]:
        """The nodes this run started (at least once)."""
        return {e["node"] for e in self.entries if e.get("event") == STARTED}


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
            batch = bank.get_object(key)
            if not isinstance(batch, list):
                raise BankError(f"journal batch {key!r} is not a list of entries")
            run["entries"].extend(batch)
    return [JournalRun(run_id, run["meta"], tuple(run["entries"]), run["end"])
            for run_id, run in sorted(runs.items()) if isinstance(run["meta"], dict)]
