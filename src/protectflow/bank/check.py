"""Check a checkpoint's objects: every one authenticated, every problem reported.

Like restic's ``check``: the metadata check authenticates every object of the
checkpoint (record, statuses, runs, journals, leases, the plugins' data such
as manifests) and makes sure every chunk it holds a reference on exists;
``read_data=True`` (``check --read-data``) also reads every such chunk,
authenticates it and checks that its name is the keyed hash of its bytes.
Nothing stops at the first problem: the report lists them all.

Chunks are found through their refs (``refs/<h[:2]>/<h>/<checkpoint id>@...``,
see :mod:`protectflow.plugins._chunks`), whatever plugin made them: a walk of
every ref in the bank, the price of not trusting any one manifest's list.

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

from protectflow.bank._keys import segment
from protectflow.bank.checkpoint import CHECKPOINTS
from protectflow.bank.objectstore import Bank
from protectflow.bank.record import check_checkpoint_id
from protectflow.errors import BankError

__all__ = ["CheckReport", "check_checkpoint"]

_REFS = "refs/"
_CHUNKS = "chunks/"


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
    BankError
        If the checkpoint has no objects at all, or the bank cannot be
        unlocked (then nothing can be checked).
    """
    prefix = f"{CHECKPOINTS}{check_checkpoint_id(checkpoint_id)}/"
    bank.keyring  # noqa: B018 -- a wrong key is one error, not one per object
    keys = bank.list_objects(prefix)
    if not keys:
        raise BankError(f"no checkpoint {checkpoint_id!r} in bank {bank.url}")
    problems: list[str] = []

    def authenticate(key: str) -> int:
        try:
            bank.get_object(key)
        except BankError as err:
            problems.append(str(err))
        return 0

    def chunk(digest: str) -> int:
        return _check_chunk(bank, digest, read_data, problems)

    digests = sorted(set(_referenced(bank, checkpoint_id)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(authenticate, keys))
        nbytes = sum(pool.map(chunk, digests))
    return CheckReport(checkpoint=checkpoint_id, objects=len(keys), chunks=len(digests),
                       bytes_read=nbytes, problems=tuple(sorted(problems)))


def _referenced(bank: Bank, checkpoint_id: str) -> Iterator[str]:
    """The chunks the checkpoint holds a ref on."""
    mark = "/" + segment(checkpoint_id) + "@"
    for key in bank.iter_objects(_REFS):
        if mark in key:
            yield key.split("/")[2]


def _check_chunk(bank: Bank, digest: str, read_data: bool, problems: list[str]) -> int:
    key = f"{_CHUNKS}{digest[:2]}/{digest}"
    if not read_data:
        if not bank.has_object(key):
            problems.append(f"chunk {digest} is missing from bank {bank.url}")
        return 0
    try:
        data = bank.get_object(key)
    except BankError as err:
        problems.append(str(err) if bank.has_object(key)
                        else f"chunk {digest} is missing from bank {bank.url}")
        return 0
    if not isinstance(data, bytes) or bank.keyring.chunk_id(data) != digest:
        problems.append(f"chunk {digest} in bank {bank.url}: its bytes do not match its name")
        return 0
    return len(data)
