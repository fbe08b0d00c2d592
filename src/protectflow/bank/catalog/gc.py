"""Garbage collection: resolve the checkpoints whose operation died, and
clear what faults leave behind.

- A checkpoint whose operation died (its lease expired, or its owner was a
  process of this host that is gone: :func:`~protectflow.bank.catalog.lease.owner_is_dead`)
  is resolved: a protect or a copy's target left ``protecting``/``copying``
  becomes ``error``, a copy's source goes back to ``available``, a delete
  left ``deleting`` becomes ``error_deleting``. With ``delete=True`` the
  failed ones are removed, their data (refs and the chunks nobody else
  uses, :func:`~protectflow.bank.chunks.refs.free_checkpoint`) first, so a
  killed protect or delete leaves no chunk behind.
- Dead operations are found by their in-progress marks in ``index/``: an
  ``index/`` lost altogether is rebuilt from the records first.
- A lease generation that cannot be read (corrupt) is replaced by a
  released one: nobody can tell who holds it, so it protects nothing and
  blocks everything.
- What lies in ``index/`` but names no checkpoint (a file dropped there, an
  entry of a checkpoint that is gone) is removed, and reported (one stat per
  entry; ``reindex`` also reads the records, and removes entries of a real
  checkpoint under another plan or time).
- Temporary files a killed writer left (``.pftmp-*``, see
  :mod:`protectflow.bank.objects._backend`) older than ``temp_grace`` seconds are
  removed; a live writer's are seconds old.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Protocol

import attrs

from protectflow._paths import TEMP_PREFIX
from protectflow.bank.catalog.checkpoint import CHECKPOINTS, IN_PROGRESS, Checkpoint
from protectflow.bank.catalog.lease import Lease, LeaseKeeper, owner_is_dead
from protectflow.bank.catalog.record import CheckpointRecord, check_checkpoint_id
from protectflow.bank.chunks.refs import free_checkpoint
from protectflow.bank.objects._backend import LocalBackend
from protectflow.bank.objects.store import Bank
from protectflow.errors import BankError, BankLockedError
from protectflow.states import AVAILABLE, COPYING, DELETING, ERROR, ERROR_DELETING, PROTECTING

__all__ = ["TEMP_GRACE", "GcReport", "collect"]

#: Seconds after which a temporary file is taken for a dead writer's.
TEMP_GRACE = 3600.0


class Catalog(Protocol):
    """What gc needs of :class:`~protectflow.bank.CheckpointStore`."""

    def remove(self, checkpoint_id: str) -> None: ...

    def ensure_indexed(self, record: CheckpointRecord) -> None: ...

    def ensure_index(self) -> None: ...

    def prune_index(self, *, thorough: bool = True) -> list[str]: ...


@attrs.frozen
class GcReport:
    """What :func:`collect` did."""

    #: Checkpoints resolved (marked error, put back, or removed).
    changed: tuple[str, ...]
    #: Chunks deleted with the checkpoints removed.
    freed_chunks: int = 0
    #: Corrupt lease generations replaced by released ones.
    corrupt_leases: tuple[str, ...] = ()
    #: Stale temporary files removed.
    temp_files: int = 0
    #: Index entries removed that named no checkpoint (files dropped there).
    stray_index: tuple[str, ...] = ()


def collect(bank: Bank, catalog: Catalog, *, now: float | None = None, delete: bool = False,
            temp_grace: float = TEMP_GRACE) -> GcReport:
    """Resolve dead operations, remove corrupt leases and stale temporary files.

    Parameters
    ----------
    bank : Bank
        The bank.
    catalog : Catalog
        Its checkpoint store, which removes and indexes checkpoints.
    now : float, optional
        The time leases and temporary files are judged at (epoch seconds).
    delete : bool
        Remove failed checkpoints, and their data, instead of marking them.
    temp_grace : float
        Seconds a temporary file may live.

    Returns
    -------
    GcReport
        What was done.
    """
    catalog.ensure_index()  # a lost index/ would hide the in-progress marks used below
    stray: tuple[str, ...] = ()
    with contextlib.suppress(BankError):  # a bank that cannot be written keeps them
        stray = tuple(catalog.prune_index(thorough=False))  # reindex reads the records
    corrupt = tuple(_remove_corrupt_leases(bank))
    changed: list[str] = []
    freed = 0
    for key in bank.list_objects(IN_PROGRESS):
        checkpoint = Checkpoint(bank, check_checkpoint_id(key[len(IN_PROGRESS):]))
        outcome = _collect(checkpoint, catalog, now=now, delete=delete)
        if outcome is not None:
            changed.append(checkpoint.id)
            freed += outcome
    temps = _remove_stale_temps(bank, (time.time() if now is None else now) - temp_grace)
    return GcReport(changed=tuple(changed), freed_chunks=freed, corrupt_leases=corrupt,
                    temp_files=temps, stray_index=stray)


def _keeper(checkpoint: Checkpoint) -> LeaseKeeper:
    return LeaseKeeper(checkpoint.bank, checkpoint.prefix + "lease", checkpoint.id)


def _remove_corrupt_leases(bank: Bank) -> Iterator[str]:
    for name, is_dir in bank.backend.listdir(CHECKPOINTS.rstrip("/")):
        if is_dir:
            with contextlib.suppress(BankError):
                yield from _keeper(Checkpoint(bank, name)).remove_corrupt()


def _target(record: CheckpointRecord) -> str | None:
    """The status gc moves a dead operation's checkpoint to; None if done."""
    status = record.status
    if status == COPYING and not record.copy_target:
        return AVAILABLE
    if status in (PROTECTING, COPYING):
        return ERROR
    if status == DELETING:  # a dead delete: delete it again to finish
        return ERROR_DELETING
    return None


def _collect(checkpoint: Checkpoint, catalog: Catalog, *, now: float | None,
             delete: bool) -> int | None:
    """Resolve one checkpoint; None if left alone, else the chunks freed."""
    keeper = _keeper(checkpoint)
    current = keeper.current(now)
    if current is not None and not owner_is_dead(current.owner):
        return None  # still running
    try:
        record = checkpoint.reload().record
    except BankLockedError:
        raise  # a wrong password proves no record missing
    except BankError:  # died before writing its record
        with contextlib.suppress(BankError):
            checkpoint.bank.delete_object(IN_PROGRESS + checkpoint.id)
        return None
    try:
        lease: Lease | None = keeper.acquire("gc", "protectflow-gc", ttl=60.0, now=now,
                                             reclaim_dead=True)
    except BankError:
        return None  # someone else is collecting it
    try:
        target = _target(record)
        if target is None:  # a finished operation that died before its index clean-up
            with contextlib.suppress(BankError):
                checkpoint.bank.delete_object(IN_PROGRESS + checkpoint.id)
            return None
        if delete and target in (ERROR, ERROR_DELETING):
            freed = free_checkpoint(checkpoint.bank, checkpoint.id)
            catalog.remove(checkpoint.id)
            lease = None  # removed with the rest
            return freed
        checkpoint.drop_reserve()  # the dead operation's last writes will not come
        checkpoint.transition(target, lease=lease,
                              reason=f"gc: the lease of {record.owner} expired"
                              if current is None else
                              f"gc: its owner {current.owner} is a process that is gone")
        catalog.ensure_indexed(record)  # it may have died before indexing
        return 0
    finally:
        if lease is not None:
            keeper.release(lease)


def _remove_stale_temps(bank: Bank, before: float) -> int:
    """Remove the ``.pftmp-*`` files of a local bank last changed before ``before``."""
    backend = bank.backend
    if not isinstance(backend, LocalBackend) or not os.path.isdir(backend.root):
        return 0
    removed = 0
    for folder, _dirs, files in os.walk(backend.root):
        for name in files:
            if not name.startswith(TEMP_PREFIX):
                continue
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                if os.lstat(path).st_mtime < before:
                    os.unlink(path)
                    removed += 1
    return removed
