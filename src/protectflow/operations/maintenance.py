"""Keeping a bank in shape: gc, repairing a checkpoint's refs, rebuilding
the index. Each is one library call behind one ``protectflow checkpoints``
action.
"""

from __future__ import annotations

import attrs

from protectflow.bank import CheckpointStore
from protectflow.bank.catalog.gc import TEMP_GRACE, GcReport, collect
from protectflow.bank.chunks.refs import repair_refs
from protectflow.errors import BankError
from protectflow.states import DELETED, DELETING, ERROR_DELETING

__all__ = ["GcReport", "ReindexReport", "RepairReport", "gc", "reindex", "repair"]


@attrs.frozen
class RepairReport:
    """What :func:`repair` did: the refs it re-created, what it could not fix."""

    checkpoint: str
    refs_made: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether every chunk the checkpoint's manifests name is there and referenced."""
        return not self.problems


def gc(store: CheckpointStore, *, delete: bool = False, now: float | None = None,
       temp_grace: float = TEMP_GRACE) -> GcReport:
    """Resolve the checkpoints whose operation died, freeing the data of
    those removed, and clear corrupt leases and stale temporary files (see
    :mod:`protectflow.bank.catalog.gc`).

    Raises
    ------
    BankError
        If the bank cannot be read or refuses a write.
    """
    return collect(store.bank, store, now=now, delete=delete, temp_grace=temp_grace)


def repair(store: CheckpointStore, checkpoint_id: str) -> RepairReport:
    """Re-create the chunk refs a checkpoint's manifests call for (the ones a
    verify reports missing), so that no delete of another checkpoint can
    take its chunks.

    Raises
    ------
    BankError
        If there is no such checkpoint, it is being deleted, or the bank
        refuses a write.
    """
    checkpoint = store.get(checkpoint_id)
    if checkpoint.status in (DELETING, ERROR_DELETING, DELETED):
        raise BankError(f"cannot repair checkpoint {checkpoint.id}: it is {checkpoint.status}; "
                        "finish the delete with `protectflow delete "
                        f"{checkpoint.id}` instead")
    made, problems = repair_refs(store.bank, checkpoint.id)
    return RepairReport(checkpoint=checkpoint.id, refs_made=tuple(made),
                        problems=tuple(problems))


@attrs.frozen
class ReindexReport:
    """What :func:`reindex` did."""

    #: Index entries that were missing and were written.
    written: int
    #: Keys removed from the index: they named no checkpoint (files dropped
    #: there, entries of checkpoints that are gone).
    dropped: tuple[str, ...]


def reindex(store: CheckpointStore) -> ReindexReport:
    """Rebuild the bank's checkpoint index from the records, and remove what
    lies in it but names no checkpoint.

    Raises
    ------
    BankError
        If the bank refuses a write.
    """
    dropped = tuple(store.prune_index())
    return ReindexReport(written=store.reindex(), dropped=dropped)
