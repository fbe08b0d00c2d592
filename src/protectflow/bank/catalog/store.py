"""The checkpoint catalog: create, find, list and garbage-collect checkpoints.

Listing never reads checkpoint records. Each checkpoint has two empty index
objects whose keys sort by creation time, sharded by UTC day::

    index/by-date/YYYY/MM/DD/HHMMSSffffff-ID
    index/by-plan/PLAN/YYYY/MM/DD/HHMMSSffffff-ID
    index/in-progress/ID            while protecting or copying (for gc)

The index is derived data: :meth:`CheckpointStore.reindex` rebuilds it from
the records, and a listing or gc rebuilds it when ``index/`` is gone altogether.
So the newest page is a descending prefix listing that opens only the newest
day shards, however many checkpoints the bank holds.
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import os
import re
import uuid
from collections.abc import Iterable

from protectflow._paths import segment
from protectflow._util import now_iso
from protectflow.bank.catalog.checkpoint import (
    CHECKPOINTS,
    DEFAULT_LEASE_TTL,
    IN_PROGRESS,
    Checkpoint,
)
from protectflow.bank.catalog.gc import collect
from protectflow.bank.catalog.record import (
    CheckpointRecord,
    CopiedFrom,
    check_checkpoint_id,
    new_record,
)
from protectflow.bank.objects.store import Bank
from protectflow.dag.plan import Plan
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import BankError, CheckpointNotFoundError
from protectflow.states import IN_PROGRESS_STATUSES

__all__ = ["CheckpointStore"]

BY_DATE = "index/by-date/"
BY_PLAN = "index/by-plan/"
#: The most candidates an ambiguous prefix's error lists.
_SHOWN = 10
#: The tail of an index entry's key: ``YYYY/MM/DD/HHMMSSffffff-ID``.
_ENTRY = re.compile(r"(?:\A|/)\d{4}/\d{2}/\d{2}/\d{6,12}-(?P<id>[^/-]+)\Z")


def index_suffix(created_at: str, checkpoint_id: str) -> str:
    """``YYYY/MM/DD/HHMMSSffffff-ID`` from an ISO time ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    day, clock = created_at.rstrip("Z").split("T")
    return "{}/{}-{}".format(day.replace("-", "/"), clock.replace(":", "").replace(".", ""),
                             checkpoint_id)


class CheckpointStore:
    """The checkpoints of one bank.

    Parameters
    ----------
    bank : Bank or str, optional
        The bank or its URL; :func:`default_bank_url` if omitted.
    """

    def __init__(self, bank: Bank | str | os.PathLike[str] | None = None) -> None:
        self.bank = bank if isinstance(bank, Bank) else Bank(bank)
        # Open it now: an unusable URL (a copy's --to) must fail before an
        # operation has written anything to another bank.
        self.bank.backend  # noqa: B018

    def __repr__(self) -> str:
        return f"CheckpointStore({self.bank!r})"

    def _index_keys(self, plan: str, created_at: str, checkpoint_id: str) -> tuple[str, str]:
        suffix = index_suffix(created_at, checkpoint_id)
        return BY_DATE + suffix, f"{BY_PLAN}{segment(plan)}/{suffix}"

    def create(
        self,
        plan: Plan,
        resource_graph: ResourceGraph,
        dag_fingerprint: str,
        owner: str,
        *,
        copied_from: CopiedFrom | None = None,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        now: float | None = None,
        tags: Iterable[str] = (),
        created_at: float | None = None,
    ) -> Checkpoint:
        """Create a checkpoint, held by ``owner``'s lease until released.

        Parameters
        ----------
        plan : Plan
            The plan, with its parameters; its ``name`` indexes the checkpoint.
        resource_graph : ResourceGraph
            The resource graph the checkpoint holds.
        dag_fingerprint : str
            The fingerprint of the HookDAG that fills the checkpoint.
        owner : str
            Who runs the operation (a user, a host, a process).
        copied_from : CopiedFrom, optional
            For a copy's target: the source's bank URL and checkpoint id.
            The checkpoint then starts in ``copying`` instead of ``protecting``.
        lease_ttl : float
            Seconds the operation's lease lasts unless renewed.
        now : float, optional
            The creation time (epoch seconds); the current time if omitted.
        tags : iterable of str
            The checkpoint's tags.
        created_at : float, optional
            The time the record says the checkpoint was taken at (a
            scheduler's clock), when not ``now``; leases keep the real time.

        Returns
        -------
        Checkpoint
            Holding the ``protect`` (or ``copy``) lease: call ``transition``
            then ``release`` when the operation ends.

        Raises
        ------
        BankError
            If the plan has no name, a tag cannot be one, or the bank refuses
            the writes.
        """
        record = new_record(uuid.uuid4().hex, plan=plan, resource_graph=resource_graph,
                            dag_fingerprint=dag_fingerprint, owner=owner,
                            copied_from=copied_from,
                            created_at=now_iso(now if created_at is None else created_at),
                            tags=tags)
        checkpoint = Checkpoint.create(self.bank, record, lease_ttl=lease_ttl, now=now)
        self._index_new(checkpoint, record.plan_name, record.created_at)
        return checkpoint

    def _index_new(self, checkpoint: Checkpoint, plan: str, created_at: str) -> None:
        """Write the index entries of a checkpoint just made; if the bank
        refuses one, take back the entries and the checkpoint and re-raise."""
        keys = self._index_keys(plan, created_at, checkpoint.id)
        try:
            for key in keys:
                self.bank.update_object(key, b"")
        except BaseException:  # a full disk: leave nothing half made
            for key in keys:
                with contextlib.suppress(BankError):
                    self.bank.delete_object(key)
            checkpoint.abandon()
            raise

    def get(self, checkpoint_id: str) -> Checkpoint:
        """The checkpoint ``checkpoint_id``, its record read.

        Raises
        ------
        CheckpointNotFoundError
            If there is no such checkpoint.
        CorruptObjectError
            If its record does not read.
        BankError
            If the id is not valid.
        """
        return Checkpoint(self.bank, checkpoint_id).reload()

    def resolve(self, prefix: str) -> str:
        """The id of the one checkpoint whose id starts with ``prefix``
        (``restore 3c88f4``), as ``git`` and ``restic`` take unique prefixes.

        Parameters
        ----------
        prefix : str
            A whole checkpoint id or its first characters.

        Returns
        -------
        str
            The whole id.

        Raises
        ------
        BankError
            If the prefix is not a valid id segment, or it starts several
            checkpoints' ids (the message lists them).
        CheckpointNotFoundError
            If it starts none (the message suggests ids close to it).
        """
        check_checkpoint_id(prefix)
        if self._exists(prefix):
            return prefix
        ids = self._ids()
        matches = [i for i in ids if i.startswith(prefix) and self._exists(i)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            shown = "".join(f"\n  {i}" for i in matches[:_SHOWN])
            more = f"\n  ... and {len(matches) - _SHOWN} more" if len(matches) > _SHOWN else ""
            raise BankError(f"checkpoint id {prefix!r} is ambiguous in {self.bank.url}: "
                            f"{len(matches)} checkpoints start with it; give more of the id:"
                            + shown + more)
        raise CheckpointNotFoundError(f"no checkpoint {prefix!r} in {self.bank.url}"
                                      + self._suggest(prefix, ids))

    def _exists(self, checkpoint_id: str) -> bool:
        return self.bank.has_object(f"{CHECKPOINTS}{checkpoint_id}/record")

    def ids(self) -> builtins.list[str]:
        """Every checkpoint's id, sorted, from one listing of the checkpoints'
        folder: no record read, no key needed (shell completion uses it)."""
        return self._ids()

    def _ids(self) -> builtins.list[str]:
        """Every checkpoint's id: one listing of the checkpoints' folder, no
        record read (a folder whose record is gone is a removed checkpoint)."""
        entries = self.bank.backend.listdir(CHECKPOINTS.rstrip("/"))
        return sorted(name for name, is_dir in entries if is_dir)

    def _suggest(self, prefix: str, ids: builtins.list[str]) -> str:
        """``; did you mean ...?`` for the ids whose start is close to ``prefix``."""
        heads: dict[str, builtins.list[str]] = {}
        for checkpoint_id in ids:
            heads.setdefault(checkpoint_id[:len(prefix)], []).append(checkpoint_id)
        close = difflib.get_close_matches(prefix, heads, n=3, cutoff=0.6)
        found = [i for head in close for i in heads[head] if self._exists(i)][:3]
        if found:
            return f"; did you mean {' or '.join(found)}?"
        return (f"; `protectflow checkpoints list --bank {self.bank.url}` lists its "
                "checkpoints (is it the bank you meant?)")

    def list(
        self, plan: str | None = None, limit: int | None = 50, marker: str | None = None
    ) -> builtins.list[Checkpoint]:
        """Checkpoints newest first, one page at a time, without reading records.

        Parameters
        ----------
        plan : str, optional
            Only the checkpoints of the plan with this name.
        limit : int, optional
            The page size (None: all).
        marker : str, optional
            The id of the last checkpoint of the previous page.

        Returns
        -------
        list of Checkpoint
            Their records are read only when used.

        Raises
        ------
        BankError
            If ``marker`` names no checkpoint, or the bank cannot be unlocked.
        """
        base = BY_DATE if plan is None else f"{BY_PLAN}{segment(plan)}/"
        marker_key = None
        if marker is not None:
            marker_key = base + index_suffix(self.get(marker).created_at, marker)
        ids: builtins.list[str] = []
        while limit is None or len(ids) < limit:
            want = None if limit is None else limit - len(ids)
            keys = self._listing(base, want, marker_key)
            # Anything else dropped into the index is no checkpoint: not shown
            # (a phantom "corrupt" checkpoint), and reindex and gc remove it.
            ids.extend(i for i in map(self._indexed_id, keys)
                       if i is not None and i not in ids and self._names_checkpoint(i))
            if not keys or want is None or len(keys) < want:
                break
            marker_key = keys[-1]
        if ids:
            # A missing key or a wrong password is the bank's problem, not
            # each record's: say it once, before anyone reads a record.
            self.bank.keyring  # noqa: B018
        return [Checkpoint(self.bank, i) for i in ids]

    @staticmethod
    def _indexed_id(key: str) -> str | None:
        """The checkpoint id an index entry names, or None if its key is not
        of an index entry's shape (a file dropped there)."""
        match = _ENTRY.search(key)
        return match.group("id") if match is not None else None

    def _entry_id(self, key: str) -> str:
        """The checkpoint id an index key names ('' for none)."""
        if key.startswith(IN_PROGRESS):
            return key[len(IN_PROGRESS):]
        return self._indexed_id(key) or ""

    def _names_checkpoint(self, checkpoint_id: str) -> bool:
        try:
            return self._exists(check_checkpoint_id(checkpoint_id))
        except BankError:  # not even a valid id
            return False

    def prune_index(self, *, thorough: bool = True) -> builtins.list[str]:
        """Remove what lies in the index but names no checkpoint: a file
        dropped there, an entry of a checkpoint that is gone, and (when
        ``thorough``, which reads every record) an entry whose record says
        another plan or time. Entries are listed before the records are
        read, so a checkpoint being made meanwhile (its record comes before
        its entries) is never taken for a stray.

        Returns
        -------
        list of str
            The keys removed.

        Raises
        ------
        BankError
            If the bank refuses a delete.
        """
        listed = [k for k in self.bank.iter_objects("index/")
                  if k.startswith((BY_DATE, BY_PLAN, IN_PROGRESS))]
        if thorough:
            found, unreadable = self._records_index(in_progress_any=True)
            wanted = set(found)
            # A checkpoint whose record does not read keeps its entries: it is
            # listed, as damaged, not hidden.
            stray = [k for k in listed if k not in wanted and self._entry_id(k) not in unreadable]
        else:  # one stat per entry, no record read: what gc can afford on a large bank
            stray = [k for k in listed if not self._names_checkpoint(self._entry_id(k))]
        for key in stray:
            self.bank.delete_object(key)
        return stray

    def reindex(self) -> int:
        """Rebuild the index from the checkpoints' records (an ``index/``
        lost or damaged); a record that cannot be read is left out.

        Returns
        -------
        int
            How many index entries were missing and written.

        Raises
        ------
        BankError
            If the bank refuses a write.
        """
        written = 0
        for key in self._index_from_records():
            if not self.bank.has_object(key):
                self.bank.update_object(key, b"")
                written += 1
        return written

    def _index_from_records(self) -> builtins.list[str]:
        """The index entries the records call for, in-progress marks included."""
        return self._records_index()[0]

    def _records_index(self, *, in_progress_any: bool = False,
                       ) -> tuple[builtins.list[str], set[str]]:
        """The index entries the readable records call for, in-progress marks
        included (``in_progress_any``: whatever the status, as a mark may
        outlive its operation for a moment); and the ids of the checkpoints
        whose record is there but cannot be read (damaged, or the bank locked)."""
        keys: builtins.list[str] = []
        unreadable: set[str] = set()
        for checkpoint_id in self._ids():
            try:
                record = Checkpoint(self.bank, checkpoint_id).reload().record
            except BankError:
                if self._exists(checkpoint_id):
                    unreadable.add(checkpoint_id)
                continue
            keys.extend(self._index_keys(record.plan_name, record.created_at, checkpoint_id))
            if in_progress_any or record.status in IN_PROGRESS_STATUSES:
                keys.append(IN_PROGRESS + checkpoint_id)
        return keys, unreadable

    def _index_lost(self) -> bool:
        """Whether ``index/`` is gone altogether from a bank that holds checkpoints."""
        return not self.bank.list_objects(BY_DATE, limit=1) and bool(self._ids())

    def ensure_index(self) -> None:
        """Rebuild the index if ``index/`` is gone altogether (as a listing
        does), in-progress marks included: gc finds the checkpoints to
        resolve by those marks. Quietly nothing on a bank that cannot be
        written, where gc can resolve nothing either."""
        if self._index_lost():
            with contextlib.suppress(BankError):
                self.reindex()

    def _listing(self, base: str, limit: int | None,
                 marker_key: str | None) -> builtins.list[str]:
        """The index keys of a page; with no index at all in a bank that
        holds checkpoints (``index/`` deleted), the index is rebuilt first --
        or, on a bank that cannot be written, read from the records."""
        keys = self.bank.list_objects(base, limit=limit, marker=marker_key, sort_dir="desc")
        if keys or not self._index_lost():
            return keys
        try:
            self.reindex()
        except BankError:  # read-only: the records say it all the same
            found = sorted((k for k in self._index_from_records() if k.startswith(base)
                            and (marker_key is None or k < marker_key)), reverse=True)
            return found if limit is None else found[:limit]
        return self.bank.list_objects(base, limit=limit, marker=marker_key, sort_dir="desc")

    def remove(self, checkpoint_id: str) -> None:
        """Delete every object of a checkpoint: data, record, runs, index entries.

        Raises
        ------
        CheckpointNotFoundError
            If there is no such checkpoint.
        """
        checkpoint = self.get(checkpoint_id)
        record = checkpoint.record
        keys = [*self._index_keys(record.plan_name, record.created_at, checkpoint_id),
                IN_PROGRESS + checkpoint_id]
        # The record last but one and the lease last: a crash midway leaves a
        # checkpoint that get() still finds and remove() can finish.
        owned = self.bank.list_objects(checkpoint.prefix)
        record_key = checkpoint.prefix + "record"
        lease_keys = [k for k in owned if k.startswith(checkpoint.prefix + "lease/")]
        rest = [k for k in owned if k != record_key and k not in lease_keys]
        for key in [*keys, *rest, record_key, *lease_keys]:
            with contextlib.suppress(BankError):
                self.bank.delete_object(key)

    def ensure_indexed(self, record: CheckpointRecord) -> None:
        """Write the index entries of the checkpoint of ``record`` that are missing.

        Raises
        ------
        BankError
            If the bank refuses the write.
        """
        for key in self._index_keys(record.plan_name, record.created_at, record.id):
            if not self.bank.has_object(key):
                self.bank.update_object(key, b"")

    def gc(self, now: float | None = None, delete: bool = False) -> builtins.list[str]:
        """Resolve checkpoints whose operation died (see :mod:`protectflow.bank.catalog.gc`,
        whose :func:`~protectflow.bank.catalog.gc.collect` also says what else it cleared).

        A checkpoint left ``protecting`` becomes ``error`` (or is removed with
        its data with ``delete=True``); a copy's target left ``copying``
        becomes ``error``; a copy's source left ``copying`` goes back to
        ``available``; a checkpoint left ``deleting`` becomes
        ``error_deleting``, from which a delete finishes the job (or is
        removed with ``delete=True``).

        Parameters
        ----------
        now : float, optional
            The time leases are judged at (epoch seconds).
        delete : bool
            Remove failed checkpoints instead of marking them ``error``.

        Returns
        -------
        list of str
            The ids of the checkpoints changed or removed.
        """
        return builtins.list(collect(self.bank, self, now=now, delete=delete).changed)
