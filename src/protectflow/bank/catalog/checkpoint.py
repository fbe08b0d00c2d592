"""Checkpoints: their record, their lease, their statuses and their data.

The record's layout and status machine are in :mod:`protectflow.bank.catalog.record`.
A checkpoint ``ID`` lives under ``checkpoints/ID/`` in the bank::

    record                  the record (JSON, see protectflow.bank.catalog.record)
    lease/<generation>      the busy flag (see protectflow.bank.catalog.lease)
    reserve                 space kept for a protect's last writes (RESERVE)
    resources/<KEY>         per-resource status, one object each, so hooks in
                            several processes never rewrite each other's
    runs/<RUN-ID>           restore/verify/copy/delete run records
    journal/<RUN>/          every operation run's journal (protectflow.bank.catalog.journal)
    data/                   plugins' data: ``bank_section``
    data/resources/<ID>/    one resource's data: ``get_resource_bank_section``

``KEY`` and ``ID`` are escaped into one key segment (``%2F`` for ``/``).

This module is past the ~400-line guide on purpose: it is the one class
operations hold, and each part with a protocol of its own already lives apart
(:mod:`~protectflow.bank.catalog.record`, :mod:`~protectflow.bank.catalog.lease`,
:mod:`~protectflow.bank.catalog.runs`, :mod:`~protectflow.bank.objects.section`); what remains
are short methods sharing the cached record, the held lease and the prefix, so
a second module would split the class or repeat its API as wrappers.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from protectflow._fields import within
from protectflow._paths import segment, unsegment
from protectflow._util import now_iso
from protectflow.bank.catalog.lease import Lease, LeaseKeeper
from protectflow.bank.catalog.record import (
    FORMAT_VERSION,
    STATUSES,
    CheckpointRecord,
    HistoryEntry,
    LeaseEvent,
    StatusChange,
    Verification,
    allowed_transitions,
    check_checkpoint_id,
    corrupt_record,
    creating_operation,
    normal_tags,
)
from protectflow.bank.catalog.runs import RunRecord, new_run_id
from protectflow.bank.catalog.stored import Stored
from protectflow.bank.objects.section import BankSection
from protectflow.bank.objects.store import Bank
from protectflow.dag.model import Resource
from protectflow.dag.outcomes import ResourceStatus
from protectflow.dag.plan import Plan
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import (
    BankError,
    CheckpointBusyError,
    CheckpointNotFoundError,
    CorruptObjectError,
)
from protectflow.states import DELETED, IN_PROGRESS_STATUSES

__all__ = ["FORMAT_VERSION", "STATUSES", "Checkpoint", "allowed_transitions"]

CHECKPOINTS = "checkpoints/"
IN_PROGRESS = "index/in-progress/"
DEFAULT_LEASE_TTL = 300.0
#: Space a new checkpoint holds until its operation's last writes: an object
#: of random bytes (no compression shrinks it), deleted before those writes,
#: so that a protect that filled the disk can still record that it failed.
RESERVE = "reserve"
RESERVE_SIZE = 64 << 10


class Checkpoint:
    """A checkpoint in a bank; its record is read on first use.

    Parameters
    ----------
    bank : Bank
        The bank holding the checkpoint.
    checkpoint_id : str
        Its id. Use :meth:`CheckpointStore.get` to check that it exists.

    Notes
    -----
    A Checkpoint pickles as ``(bank URL, id)``: in another process the record
    is read again when needed, and held leases are not carried along.
    """

    def __init__(self, bank: Bank, checkpoint_id: str, *,
                 record: CheckpointRecord | None = None) -> None:
        self.bank = bank
        self.id = check_checkpoint_id(checkpoint_id)
        self.prefix = f"{CHECKPOINTS}{checkpoint_id}/"
        self._record = record
        self._held: Lease | None = None
        self._leases = LeaseKeeper(bank, self.prefix + "lease", f"checkpoint {checkpoint_id}")

    @classmethod
    def create(cls, bank: Bank, record: CheckpointRecord, *,
               lease_ttl: float = DEFAULT_LEASE_TTL, now: float | None = None) -> Checkpoint:
        """Write a new checkpoint's ``record`` under its operation's lease.

        The lease (``protect``, or ``copy`` for a copy's target) is taken for
        the record's owner before anything else is written, then the
        checkpoint is marked in progress, then its record is written: if the
        process dies at any point after the lease, gc finds and resolves it.

        Parameters
        ----------
        bank : Bank
            The bank to create the checkpoint in.
        record : CheckpointRecord
            As :func:`protectflow.bank.catalog.record.new_record` builds it.
        lease_ttl : float
            Seconds the lease lasts unless renewed.
        now : float, optional
            The time the lease is taken at (epoch seconds).

        Returns
        -------
        Checkpoint
            Holding the lease: call ``transition`` then ``release`` when the
            operation ends.

        Raises
        ------
        CheckpointBusyError
            If the checkpoint is already held.
        BankError
            If the bank refuses a write.
        """
        checkpoint = cls(bank, record.id)
        operation = creating_operation(record.copied_from)
        # The reserve first: a full disk fails here, with nothing written.
        bank.update_object(checkpoint.prefix + RESERVE, os.urandom(
            RESERVE_SIZE + 2 * len(json.dumps(record.to_json(), default=str))))
        try:
            lease = checkpoint._leases.acquire(operation, record.owner, ttl=lease_ttl,
                                               now=now)
            bank.update_object(IN_PROGRESS + checkpoint.id, b"")
            checkpoint._write(record)
        except BaseException:
            checkpoint.abandon()
            raise
        checkpoint._held = lease
        return checkpoint

    def abandon(self) -> None:
        """Delete every object of a checkpoint whose creation failed (deletes
        only, so this works on a full disk too)."""
        keys = [*self.bank.list_objects(self.prefix), IN_PROGRESS + self.id]
        for key in keys:
            with contextlib.suppress(BankError):
                self.bank.delete_object(key)

    def drop_reserve(self) -> None:
        """Give back the space kept since creation for the last writes of a
        protect or copy (its final status and history): the disk may be full."""
        with contextlib.suppress(BankError):
            self.bank.delete_object(self.prefix + RESERVE)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Checkpoint, (self.bank, self.id))

    def __repr__(self) -> str:
        return f"Checkpoint({self.bank!r}, {self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and (other.bank, other.id) == (self.bank, self.id)

    def __hash__(self) -> int:
        return hash((self.bank, self.id))

    # -- the record -------------------------------------------------------------
    def _load(self) -> CheckpointRecord:
        key = self.prefix + "record"
        source = Stored(key, self.bank.url)
        try:
            data = self.bank.get_object(key)
        except CorruptObjectError as err:  # there, but its header or JSON is damaged
            raise corrupt_record(source, str(err)) from err
        except BankError:
            if not self.bank.has_object(key):
                raise CheckpointNotFoundError(
                    f"no checkpoint {self.id!r} in bank {self.bank.url}; `protectflow "
                    "checkpoints list` shows the ids") from None
            raise  # a bank that cannot be unlocked or read: nothing wrong with the record
        return CheckpointRecord.from_json(data, source)

    @property
    def record(self) -> CheckpointRecord:
        """The record as last read (see :meth:`reload`).

        Raises
        ------
        CheckpointNotFoundError
            If there is no such checkpoint.
        CorruptObjectError
            If its record fails authentication or does not read as a record.
        """
        if self._record is None:
            self._record = self._load()
        return self._record

    def reload(self) -> Checkpoint:
        """Read the record again; return self.

        Raises
        ------
        CheckpointNotFoundError, CorruptObjectError
            As :attr:`record`.
        """
        self._record = self._load()
        return self

    def _write(self, record: CheckpointRecord) -> None:
        self.bank.update_object(self.prefix + "record", record.to_json())
        self._record = record

    def _append_history(self, entry: HistoryEntry) -> None:
        record = self._load()
        self._write(attrs.evolve(record, operations=(*record.operations, entry),
                                 updated_at=now_iso()))

    def set_verification(self, *, ok: bool, problems: int, summary: str | None) -> None:
        """Record how a verify of the checkpoint just ended (its record's
        ``verification``, shown by ``checkpoints show`` and ``list``).

        Raises
        ------
        BankError
            If the bank refuses the write.
        """
        record = self._load()
        self._write(attrs.evolve(record, verification=Verification(ok, problems, summary)))

    def retag(self, owner: str, *, add: Iterable[str] = (),
              remove: Iterable[str] = ()) -> tuple[str, ...]:
        """Add and remove tags (``checkpoints tag ID --add T --remove T``):
        a record update under a ``tag`` lease of its own, so it is refused
        while another operation holds the checkpoint. Returns the new tags.

        Raises
        ------
        CheckpointBusyError
            If another operation holds the checkpoint.
        BankError
            If a tag cannot be one (nothing is written then), or the
            checkpoint is deleted.
        """
        added, removed = normal_tags(add), normal_tags(remove)
        if self.record.status == DELETED:
            raise BankError(f"checkpoint {self.id} is deleted: a tombstone takes no tags")
        with self.running("tag", owner):
            record = self._load()
            tags = normal_tags((set(record.tags) | set(added)) - set(removed))
            if tags != record.tags:
                self._write(attrs.evolve(record, tags=tags, updated_at=now_iso()))
        return tags

    @property
    def tags(self) -> tuple[str, ...]:
        """The checkpoint's tags, sorted."""
        return self.record.tags

    @property
    def status(self) -> str:
        """The checkpoint's status, one of :data:`STATUSES`."""
        return self.record.status

    @property
    def plan(self) -> Plan:
        """The plan (with its parameters) the checkpoint was taken with."""
        return self.record.plan

    @property
    def resource_graph(self) -> ResourceGraph:
        """The resource graph the checkpoint holds."""
        return self.record.resource_graph

    @property
    def dag_fingerprint(self) -> str:
        return self.record.dag_fingerprint

    @property
    def created_at(self) -> str:
        return self.record.created_at

    @property
    def owner(self) -> str:
        return self.record.owner

    @property
    def operations(self) -> tuple[HistoryEntry, ...]:
        """History: lease starts and ends, and status changes, oldest first."""
        return self.record.operations

    # -- status -----------------------------------------------------------------
    def transition(self, status: str, *, reason: str | None = None,
                   lease: Lease | None = None, next_steps: str | None = None) -> None:
        """Move the checkpoint to ``status``.

        Parameters
        ----------
        status : str
            The new status.
        reason : str, optional
            Why (kept in the record and its history).
        lease : Lease, optional
            The lease this change is made under; the one this object took if
            omitted. If another operation holds the checkpoint, the change is
            refused.
        next_steps : str, optional
            What a user can do now (after a failure: resume or delete).

        Raises
        ------
        BankError
            If the transition is illegal (the message lists the allowed ones).
        CheckpointBusyError
            If the checkpoint is busy with another operation.
        """
        lease = lease or self._held
        current = self._leases.current()
        if current is not None and (lease is None or current.token != lease.token):
            raise CheckpointBusyError(f"cannot move checkpoint {self.id} to {status}: it is "
                                      f"busy with {current.describe()}")
        record = self._load()
        old = record.status
        allowed = allowed_transitions(old, copy_target=record.copy_target)
        if status not in allowed:
            raise BankError(f"illegal transition {old} -> {status} for checkpoint {self.id}; "
                            f"allowed: {', '.join(allowed) or 'none'}")
        stamp = now_iso()
        change = StatusChange(old, status, reason, at=stamp)
        record = attrs.evolve(record, status=status, status_reason=reason, updated_at=stamp,
                              next_steps=next_steps, operations=(*record.operations, change))
        if status in IN_PROGRESS_STATUSES:  # gc finds it here if its operation dies
            self.bank.update_object(IN_PROGRESS + self.id, b"")
        self._write(record)
        if old in IN_PROGRESS_STATUSES and status not in IN_PROGRESS_STATUSES:
            with contextlib.suppress(BankError):
                self.bank.delete_object(IN_PROGRESS + self.id)

    def set_resource_status(self, resource: str | Resource, status: str,
                            reason: str | None = None) -> None:
        """Record one resource's status (``TYPE#ID`` key or a Resource)."""
        key = resource.key if isinstance(resource, Resource) else resource
        self.bank.update_object(f"{self.prefix}resources/{segment(key)}",
                                ResourceStatus(status, reason, now_iso()).to_json())

    def set_resource_statuses(self, statuses: Mapping[str, ResourceStatus]) -> None:
        """Record every resource's status at once, as the framework does at the
        end of an operation: one object, whatever the number of resources.

        These take precedence over :meth:`set_resource_status`'s.
        """
        stamp = now_iso()
        self.bank.update_object(self.prefix + "statuses", {
            key: attrs.evolve(value, updated_at=stamp).to_json()
            for key, value in sorted(statuses.items())})

    @property
    def resources(self) -> dict[str, ResourceStatus]:
        """Each resource's status by key, freshly read.

        Raises
        ------
        CorruptObjectError
            If a status does not read.
        """
        base = self.prefix + "resources/"
        out: dict[str, ResourceStatus] = {}
        for key in self.bank.list_objects(base):
            failing = Stored(key, self.bank.url).failing("resource status")
            out[unsegment(key[len(base):])] = ResourceStatus.from_json(
                self.bank.get_object(key), failing)
        bulk_key = self.prefix + "statuses"
        if self.bank.has_object(bulk_key):
            fields = Stored(bulk_key, self.bank.url).fields(
                self.bank.get_object(bulk_key), "resource statuses")
            for key, value in fields.data.items():
                out[key] = ResourceStatus.from_json(value, within(fields.fail, key))
        return dict(sorted(out.items()))

    # -- the lease ----------------------------------------------------------------
    @property
    def lease(self) -> Lease | None:
        """The lease of the operation running on the checkpoint, or None."""
        return self._leases.current()

    @property
    def busy(self) -> bool:
        """Whether an operation holds the checkpoint."""
        return self.lease is not None

    def acquire(self, operation: str, owner: str, *, ttl: float = DEFAULT_LEASE_TTL,
                now: float | None = None, reclaim_dead: bool = False) -> Lease:
        """Take the checkpoint for ``operation`` (restore, verify, copy, delete).

        With ``reclaim_dead`` (a resumed operation), a lease whose owner is a
        dead process of this host is taken over before it expires (see
        :func:`protectflow.bank.catalog.lease.owner_is_dead`).

        Raises
        ------
        CheckpointBusyError
            If another operation holds it: the message names that operation.
        """
        lease = self._leases.acquire(operation, owner, ttl=ttl, now=now,
                                     reclaim_dead=reclaim_dead)
        self._held = lease
        self._append_history(LeaseEvent("start", operation, owner))
        return lease

    def renew(self, lease: Lease | None = None, *, ttl: float = DEFAULT_LEASE_TTL) -> Lease:
        """Extend the lease (the one this object holds by default).

        Raises
        ------
        BankError
            If there is no such lease, it expired, or another process took it.
        """
        lease = lease or self._held
        if lease is None:
            raise BankError(f"checkpoint {self.id}: no lease to renew; acquire() first")
        self._held = self._leases.renew(lease, ttl=ttl)
        return self._held

    def release(self, lease: Lease | None = None) -> None:
        """Give the lease up (the one this object holds by default)."""
        lease = lease or self._held
        if lease is None:
            return
        with contextlib.suppress(BankError):  # the record may be gone (gc, remove)
            self._append_history(LeaseEvent("end", lease.operation, lease.owner))
        self._leases.release(lease)
        self._held = None

    @contextlib.contextmanager
    def running(self, operation: str, owner: str, *,
                ttl: float = DEFAULT_LEASE_TTL) -> Iterator[Lease]:
        """Hold the lease for the duration of a ``with`` block.

        Raises
        ------
        CheckpointBusyError
            If another operation holds the checkpoint.
        """
        lease = self.acquire(operation, owner, ttl=ttl)
        try:
            yield lease
        finally:
            self.release()

    # -- data ---------------------------------------------------------------------
    @property
    def bank_section(self) -> BankSection:
        """The section for the whole checkpoint's plugin data."""
        return BankSection(self.bank, self.prefix + "data")

    def get_resource_bank_section(self, resource_id: str | Resource, *,
                                  read_only: bool = False) -> BankSection:
        """The section for one resource's data (Karbor's API).

        Pass the Resource (or its ``TYPE#ID`` key) where ids of different
        types may collide; a bare id is accepted as Karbor's plugins pass it.
        """
        name = resource_id.key if isinstance(resource_id, Resource) else resource_id
        return BankSection(self.bank, f"{self.prefix}data/resources/{segment(name)}",
                           read_only=read_only)

    # -- runs ---------------------------------------------------------------------
    def start_run(self, operation: str, owner: str) -> RunRecord:
        """Create and store a run record of ``operation`` on this checkpoint."""
        run = RunRecord(id=new_run_id(), checkpoint_id=self.id, operation=operation,
                        owner=owner)
        self.save_run(run)
        return run

    def save_run(self, run: RunRecord) -> None:
        """Store ``run`` (atomically replacing its previous state)."""
        self.bank.update_object(self._run_key(run.id), run.to_json())

    def _run_key(self, run_id: str) -> str:
        return f"{self.prefix}runs/{check_checkpoint_id(run_id)}"

    def _read_run(self, key: str) -> RunRecord:
        return RunRecord.from_json(self.bank.get_object(key), Stored(key, self.bank.url))

    def get_run(self, run_id: str) -> RunRecord:
        """The run record ``run_id``.

        Raises
        ------
        BankError
            If there is no such run.
        CorruptObjectError
            If it does not read as a run record.
        """
        return self._read_run(self._run_key(run_id))

    def list_runs(self, limit: int | None = None) -> list[RunRecord]:
        """Run records, newest first.

        Raises
        ------
        CorruptObjectError
            If one does not read as a run record.
        """
        keys = self.bank.list_objects(self.prefix + "runs/", limit=limit, sort_dir="desc")
        return [self._read_run(key) for key in keys]

