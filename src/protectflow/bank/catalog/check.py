"""Check a checkpoint's objects: every one authenticated, every problem reported.

Like restic's ``check``: the metadata check authenticates every object of the
checkpoint (record, statuses, runs, journals, leases, the plugins' data such
as manifests) and makes sure every chunk it holds a reference on exists;
``read_data=True`` (``check --read-data``) also reads every such chunk,
authenticates it and checks that its name is the keyed hash of its bytes.
Nothing stops at the first problem: the report lists them all.

Chunks are found through their refs (``refs/<h[:2]>/<h>/<checkpoint id>@...``,
see :mod:`protectflow.bank.chunks.store`), whatever plugin made them: a walk of
every ref in the bank, the price of not trusting any one manifest's list.
The refs are then checked against the manifests (see
:mod:`protectflow.bank.chunks.refs` for how a manifest names chunks): a chunk a
manifest names without its resource's ref is a problem even when the chunk
is there -- a delete of another checkpoint sharing it could remove it (``protectflow
checkpoints repair`` re-creates the refs) -- and a named chunk that is gone
is one too. A chunk that fails its read is marked bad, so that the next
protect of its data stores it again (the one write a check makes).

Rollback -- what authentication does not catch: an object replaced by an
*older authentic version of itself* (same key). Chunks, manifests, plans,
DAGs and journal batches are written once, so for them there is no older
version. The objects that are rewritten -- the checkpoint's record (status
and history; its plan, graph and fingerprint never change after creation),
per-resource statuses, leases, run records and the fs plugin's pointer to
its latest manifest -- can be rolled back one by one by someone who kept an
old copy and can write to the bank. The effect is bounded: a status or a
history line goes back, a lease comes back, a later protect reuses an older
manifest (its chunks are re-read and re-checked when missing); no rollback
makes a restore write other bytes, or a command run that the operator's own
plan does not name. Detecting it would take state kept outside the bank
(borg's local manifest timestamp), which a bank shared between machines does
not have.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import attrs

from protectflow._paths import segment, unsegment
from protectflow.bank.catalog.checkpoint import CHECKPOINTS
from protectflow.bank.catalog.record import check_checkpoint_id
from protectflow.bank.chunks.refs import named_chunks
from protectflow.bank.chunks.store import ChunkStore, chunk_key
from protectflow.bank.objects.store import Bank
from protectflow.errors import BankError, CheckpointNotFoundError

__all__ = ["CheckReport", "check_checkpoint"]

_REFS = "refs/"


@attrs.frozen
class CheckReport:
    """What :func:`check_checkpoint` found."""

    checkpoint: str
    objects: int
    chunks: int
    bytes_read: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def check_checkpoint(bank: Bank, checkpoint_id: str, *, read_data: bool = False,
                     workers: int = 4) -> CheckReport:
    """Authenticate every object of a checkpoint and find its chunks.

    Parameters
    ----------
    bank : Bank
        The bank holding it.
    checkpoint_id : str
        The checkpoint.
    read_data : bool
        Also read and check every chunk it references.
    workers : int
        Threads reading objects.

    Returns
    -------
    CheckReport
        Every problem found, sorted.

    Raises
    ------
    CheckpointNotFoundError
        If the checkpoint has no objects at all.
    BankLockedError
        If the bank cannot be unlocked (then nothing can be checked).
    """
    prefix = f"{CHECKPOINTS}{check_checkpoint_id(checkpoint_id)}/"
    bank.keyring  # noqa: B018 -- a wrong key is one error, not one per object
    keys = bank.list_objects(prefix)
    if not keys:
        raise CheckpointNotFoundError(f"no checkpoint {checkpoint_id!r} in bank {bank.url}")
    problems: list[str] = []
    digests = _chunks_to_check(bank, checkpoint_id, problems)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda key: _authenticate(bank, key, problems), keys))
        nbytes = sum(pool.map(lambda digest: _check_chunk(bank, digest, read_data, problems),
                              digests))
    return CheckReport(checkpoint=checkpoint_id, objects=len(keys), chunks=len(digests),
                       bytes_read=nbytes, problems=tuple(sorted(problems)))


def _authenticate(bank: Bank, key: str, problems: list[str]) -> None:
    """Read one object, which authenticates it; a failure is a problem."""
    try:
        bank.get_object(key)
    except BankError as err:
        problems.append(str(err))


def _chunks_to_check(bank: Bank, checkpoint_id: str, problems: list[str]) -> list[str]:
    """The chunks the checkpoint holds refs on or its manifests name, sorted."""
    refs: set[tuple[str, str]] = set(_referenced(bank, checkpoint_id))
    return sorted({digest for _, digest in refs}
                  | set(_unreferenced(bank, checkpoint_id, refs, problems)))


def _referenced(bank: Bank, checkpoint_id: str) -> Iterator[tuple[str, str]]:
    """``(owner, chunk)`` for each ref the checkpoint holds."""
    mark = "/" + segment(checkpoint_id) + "@"
    for key in bank.iter_objects(_REFS):
        if mark in key:
            _, _, digest, owner = key.split("/", 3)
            yield unsegment(owner), digest


def _unreferenced(bank: Bank, checkpoint_id: str, refs: set[tuple[str, str]],
                  problems: list[str]) -> Iterator[str]:
    """The chunks the checkpoint's manifests name without their resource's
    ref, each reported once."""
    seen: set[tuple[str, str]] = set()
    for key, owner, digest in named_chunks(bank, checkpoint_id):
        if owner is None or (owner, digest) in refs or (owner, digest) in seen:
            continue
        seen.add((owner, digest))
        if bank.has_object(chunk_key(digest)):
            problems.append(
                f"chunk {digest} named by {key} has no ref for its resource, so a delete "
                "of another checkpoint sharing it could remove it: `protectflow "
                f"checkpoints repair {checkpoint_id}` re-creates the refs")
            yield digest
        else:
            problems.append(f"chunk {digest} named by {key} is missing from bank {bank.url} "
                            "(and has no ref)")


def _check_chunk(bank: Bank, digest: str, read_data: bool, problems: list[str]) -> int:
    key = chunk_key(digest)
    if not read_data:
        if not bank.has_object(key):
            problems.append(f"chunk {digest} is missing from bank {bank.url}")
        return 0
    try:
        data = bank.get_object(key)
    except BankError as err:
        if not bank.has_object(key):
            problems.append(f"chunk {digest} is missing from bank {bank.url}")
            return 0
        problems.append(str(err))
        ChunkStore(bank, "check").mark_bad(digest, str(err))
        return 0
    if not isinstance(data, bytes) or bank.keyring.chunk_id(data) != digest:
        problems.append(f"chunk {digest} in bank {bank.url}: its bytes do not match its name")
        ChunkStore(bank, "check").mark_bad(digest, "its bytes do not match its name")
        return 0
    return len(data)
