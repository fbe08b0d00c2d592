"""Run journals: every hook's start and end, recorded durably in the checkpoint.

One operation run writes one journal; a resumed run writes a new one that
names the run it resumes. In the bank, under ``checkpoints/ID/``::

    journal/<RUN>/meta            what the run was for (a :class:`RunMeta`):
                                  operation, DAG and plan fingerprints, plugin
                                  versions, executor, owner, and the run it
                                  resumes (or null)
    journal/<RUN>/e/<SEQ>         one batch of entries (a JSON list), SEQ = 0, 1...
    journal/<RUN>/w/<LINK>        entries a worker recorded inside a chain of
                                  hooks, before starting the next one
    journal/<RUN>/end             how the run ended, when it did (a :class:`JournalEnd`)

Every entry is a :class:`JournalEntry`: the executors build them (see
:mod:`protectflow.executors.invoke`), this module stores and reads them back;
each document's ``from_json`` checks what it reads and refuses a damaged one
naming its object.

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
from protectflow._fields import Fail, Fields, within
from protectflow._util import now_iso
from protectflow.bank.catalog.checkpoint import Checkpoint
from protectflow.bank.catalog.runs import new_run_id
from protectflow.bank.catalog.stored import Stored
from protectflow.dag.outcomes import ErrorInfo, StatusUpdate
from protectflow.states import FAILED, STARTED, SUCCEEDED, TIMED_OUT

__all__ = ["BankJournal", "JournalEnd", "JournalEntry", "JournalRun", "RunMeta", "read_journal"]

JOURNAL_VERSION = 1
#: Events that end an attempt; ``succeeded`` is the one a resumed run reuses.
END_EVENTS = frozenset((SUCCEEDED, FAILED, TIMED_OUT))


@attrs.frozen
class JournalEntry:
    """One entry of a run journal: attempt ``attempt`` of ``node`` started,
    or ended (``succeeded``, ``failed`` or ``timed_out``) at ``time``.

    An end names its ``worker``; a success holds its ``output`` and
    ``new_resources``, a failure its ``error`` (type, message, traceback)
    and whether it is ``retrying``; either holds the ``status_updates`` its
    attempt reported (restore, verify, copy). ``inexact`` marks a success
    whose output would not go into JSON: its ``output`` and ``new_resources``
    are kept as their ``repr``, and a resume runs that hook again.
    """

    node: str
    event: str
    attempt: int
    time: float
    worker: str | None = None
    output: Any = attrs.field(default=None, hash=False)
    new_resources: Mapping[str, Any] | str | None = attrs.field(default=None, hash=False)
    error: ErrorInfo | None = None
    retrying: bool = False
    status_updates: tuple[StatusUpdate, ...] = ()
    inexact: bool = False

    def to_json(self) -> dict[str, Any]:
        """The entry as the journal holds it: the fields of its kind of event."""
        data: dict[str, Any] = {"node": self.node, "event": self.event,
                                "attempt": self.attempt, "time": self.time}
        if self.event == SUCCEEDED:
            data.update(worker=self.worker, output=self.output,
                        new_resources=self.new_resources)
        elif self.event != STARTED:
            data.update(worker=self.worker,
                        error=None if self.error is None else self.error.to_json(),
                        retrying=self.retrying)
        if self.status_updates:
            data["status_updates"] = [u.to_json() for u in self.status_updates]
        if self.inexact:
            data["inexact"] = True
        return data

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> JournalEntry:
        """The entry :meth:`to_json` wrote.

        Raises
        ------
        Exception
            What ``fail`` makes, naming the field missing or of the wrong type.
        """
        fields = Fields(data, "journal entry", fail)
        error = fields.optional("error", dict)
        inexact = fields.default("inexact", bool, False)
        return cls(
            node=fields.get("node", str), event=fields.get("event", str),
            attempt=fields.get("attempt", int), time=float(fields.get("time", float)),
            worker=fields.optional("worker", str), output=fields.data.get("output"),
            new_resources=fields.optional("new_resources", str) if inexact
            else fields.optional("new_resources", dict),
            error=None if error is None else ErrorInfo.from_json(error, within(fail, "error")),
            retrying=fields.default("retrying", bool, False),
            status_updates=tuple(
                StatusUpdate.from_json(u, within(fail, f"status_updates[{i}]"))
                for i, u in enumerate(fields.default("status_updates", list, []))),
            inexact=inexact,
        )


@attrs.frozen(kw_only=True)
class RunMeta:
    """What a run was for (``journal/<RUN>/meta``): its ``operation``, the
    fingerprints of the DAG and of the plan, the version of every protection
    plugin it uses, its ``executor``, ``owner`` and ``parameters``, the plan
    file it was read from, the run it ``resumes`` and the journaled
    successes it runs again on purpose (``redo``: broken windows)."""

    operation: str
    dag_fingerprint: str
    plan_fingerprint: str
    plugin_versions: Mapping[str, str] = attrs.field(hash=False)
    executor: str
    owner: str
    parameters: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, hash=False)
    plan_source: str | None = None
    resumes: str | None = None
    redo: tuple[str, ...] = ()
    run: str = attrs.field(factory=new_run_id)
    started_at: str = attrs.field(factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": JOURNAL_VERSION, "run": self.run, "started_at": self.started_at,
            "operation": self.operation, "dag_fingerprint": self.dag_fingerprint,
            "plan_fingerprint": self.plan_fingerprint,
            "plugin_versions": dict(self.plugin_versions), "executor": self.executor,
            "owner": self.owner,
            "parameters": {k: dict(v) for k, v in self.parameters.items()},
            "plan_source": self.plan_source, "resumes": self.resumes,
            "redo": sorted(self.redo),
        }

    @classmethod
    def from_json(cls, data: object, source: Stored) -> RunMeta:
        """The meta :meth:`to_json` wrote, read from ``source`` (one written
        before ``redo`` was kept redoes nothing).

        Raises
        ------
        CorruptObjectError
            Naming the object and the first field missing or of the wrong type.
        BankError
            If it is of another format version.
        """
        fields = source.fields(data, "journal meta", version=JOURNAL_VERSION)
        versions = fields.get("plugin_versions", dict)
        parameters = fields.default("parameters", dict, {})
        if not all(isinstance(v, str) for v in versions.values()):
            raise fields.fail("'plugin_versions' does not map plugins to versions")
        if not all(isinstance(v, dict) for v in parameters.values()):
            raise fields.fail("'parameters' does not map names to JSON objects")
        return cls(
            operation=fields.get("operation", str),
            dag_fingerprint=fields.get("dag_fingerprint", str),
            plan_fingerprint=fields.get("plan_fingerprint", str), plugin_versions=versions,
            executor=fields.get("executor", str), owner=fields.get("owner", str),
            parameters=parameters, plan_source=fields.optional("plan_source", str),
            resumes=fields.optional("resumes", str), redo=fields.strings("redo"),
            run=fields.get("run", str), started_at=fields.get("started_at", str),
        )


@attrs.frozen
class JournalEnd:
    """How a run ended (``journal/<RUN>/end``): its ``state`` and when."""

    state: str
    at: str = attrs.field(factory=now_iso)

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "at": self.at}

    @classmethod
    def from_json(cls, data: object, source: Stored) -> JournalEnd:
        """The end :meth:`to_json` wrote, read from ``source``.

        Raises
        ------
        CorruptObjectError
            Naming the object and the field missing or of the wrong type.
        """
        fields = source.fields(data, "journal end")
        return cls(fields.get("state", str), fields.get("at", str))


class BankJournal:
    """The journal of one run, written into ``checkpoint``.

    Use :meth:`start` to create one; pass it as the ``journal`` run option.
    """

    def __init__(self, checkpoint: Checkpoint, meta: RunMeta) -> None:
        self.checkpoint, self.meta, self.run_id = checkpoint, meta, meta.run
        self.prefix = f"{checkpoint.prefix}journal/{meta.run}/"
        self._seq = 0
        self._ended = 0  # attempts ended, for the fault-injection test hook

    @classmethod
    def start(cls, checkpoint: Checkpoint, meta: RunMeta) -> BankJournal:
        """Write a new run's ``meta`` and return its journal.

        Raises
        ------
        BankError
            If the bank refuses the write.
        """
        checkpoint.bank.update_object(f"{checkpoint.prefix}journal/{meta.run}/meta",
                                      meta.to_json())
        return cls(checkpoint, meta)

    def record(self, entries: list[JournalEntry]) -> None:
        """Write ``entries`` as the next batch, atomically and durably.

        An entry whose output will not go into JSON is kept as its ``repr``
        and marked ``inexact``: a resumed run runs that hook again.

        Raises
        ------
        BankError
            If the bank refuses the write.
        """
        ended = self._ended + sum(e.event in END_EVENTS for e in entries)
        _faults.before_journal(ended)
        batch = _stored(entries)
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
        self.checkpoint.bank.update_object(f"{self.prefix}w/{name}", _stored(entries))

    def finish(self, state: str) -> None:
        """Record how the run ended (``succeeded``, ``failed``, ``cancelled``)."""
        self.checkpoint.bank.update_object(self.prefix + "end", JournalEnd(state).to_json())


def _stored(entries: list[JournalEntry]) -> list[dict[str, Any]]:
    """The JSON of a batch of ``entries``, each as :func:`_jsonable` makes it
    (checked once for the batch: the common case has nothing to fix)."""
    batch = [entry.to_json() for entry in entries]
    try:
        json.dumps(batch)
    except (TypeError, ValueError):
        return [_jsonable(entry) for entry in entries]
    return batch


def _jsonable(entry: JournalEntry) -> dict[str, Any]:
    """The JSON of ``entry``; of the entry marked ``inexact``, with its output
    and new resources as their ``repr``, when they will not go into JSON
    (kept to read, never taken as a result)."""
    data = entry.to_json()
    try:
        json.dumps(data)
    except (TypeError, ValueError):
        return attrs.evolve(
            entry, output=None if entry.output is None else repr(entry.output),
            new_resources=None if entry.new_resources is None else repr(entry.new_resources),
            inexact=True).to_json()
    return data


def _entries(batch: object, source: Stored) -> list[JournalEntry]:
    """The entries of the batch stored at ``source`` (a bank is untrusted storage).

    Raises
    ------
    CorruptObjectError
        Naming the batch, if it is not a list of entries.
    """
    fail = source.failing("journal batch")
    if not isinstance(batch, list):
        raise fail("it is not a list of entries")
    return [JournalEntry.from_json(entry, within(fail, f"entry {i}"))
            for i, entry in enumerate(batch)]


@attrs.frozen
class JournalRun:
    """One run's journal as read back: its ``meta``, its entries in order,
    and how it ended (``None`` if it did not: a crash)."""

    run_id: str
    meta: RunMeta
    entries: tuple[JournalEntry, ...]
    end: JournalEnd | None

    def succeeded(self) -> dict[str, JournalEntry]:
        """Node id -> the entry of its success, for exact successes only."""
        return {e.node: e for e in self.entries if e.event == SUCCEEDED and not e.inexact}

    def started(self) -> set[str]:
        """The nodes this run started (at least once)."""
        return {e.node for e in self.entries if e.event == STARTED}


@attrs.define
class _Reading:
    """What :func:`read_journal` has found of one run so far."""

    meta: RunMeta | None = None
    entries: list[JournalEntry] = attrs.field(factory=list)
    end: JournalEnd | None = None


def read_journal(checkpoint: Checkpoint) -> list[JournalRun]:
    """Every run journal of ``checkpoint``, oldest first (a run whose meta is
    missing is left out: nothing of it can be trusted to resume from).

    Raises
    ------
    BankError
        If a journal object cannot be read.
    CorruptObjectError
        If one does not read as what it should be (the message names it).
    """
    base = checkpoint.prefix + "journal/"
    bank = checkpoint.bank
    runs: dict[str, _Reading] = {}
    for key in bank.iter_objects(base):
        run_id, _, rest = key[len(base):].partition("/")
        run = runs.setdefault(run_id, _Reading())
        source = Stored(key, bank.url)
        if rest == "meta":
            run.meta = RunMeta.from_json(bank.get_object(key), source)
        elif rest == "end":
            run.end = JournalEnd.from_json(bank.get_object(key), source)
        elif rest.startswith(("e/", "w/")):
            run.entries.extend(_entries(bank.get_object(key), source))
    return [JournalRun(run_id, run.meta, tuple(run.entries), run.end)
            for run_id, run in sorted(runs.items()) if run.meta is not None]
