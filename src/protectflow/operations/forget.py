"""``forget`` and ``prune``: a bank kept for a year.

:func:`forget` applies a retention policy (:mod:`protectflow.retention`) to
every plan of a bank, or to the plans named, as restic's ``forget`` groups
snapshots by host and paths: each plan's checkpoints are decided apart. The
policy of a plan is the command line's rules over the plan's own
``retention:`` (the plan file given, else the plan kept in the plan's newest
checkpoint). Each checkpoint to go is deleted by the delete operation
(:func:`~protectflow.operations.runs.delete_checkpoint`): its plugins' delete
hooks release its chunks under the chunk store's protocol, which keeps every
chunk a running protect holds a ref on, and its record stays as a ``deleted``
tombstone. A checkpoint that turns busy between the decision and its delete
is kept (and said so).

:func:`prune` then frees what no remaining checkpoint needs, exactly, while
protects run: chunks without a ref that no live manifest names, and refs
whose checkpoint is gone or deleted, each through the same protocol (a ref
added meanwhile wins); it finishes the deletes left ``error_deleting``,
resolves operations that died (:func:`~protectflow.bank.catalog.gc.collect`),
and removes the tombstones of checkpoints deleted longer ago than
``purge_after`` seconds, so that ``checkpoints list`` stops showing them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs

from protectflow._paths import unsegment
from protectflow.bank import Checkpoint, CheckpointStore
from protectflow.bank.catalog.gc import collect
from protectflow.bank.catalog.record import CheckpointRecord
from protectflow.bank.chunks.refs import live_names
from protectflow.bank.chunks.store import REFS, ChunkStore
from protectflow.errors import BankError, CheckpointBusyError, CheckpointNotFoundError
from protectflow.executors import Executor, get_executor
from protectflow.operations.prepared import RunSettings
from protectflow.operations.runs import delete_checkpoint
from protectflow.retention import Candidate, Decision, RetentionPolicy, decide
from protectflow.states import DELETED, ERROR_DELETING

__all__ = ["ForgetReport", "PlanForget", "PruneReport", "forget", "prune"]

_CHUNKS = "chunks/"
#: Records read at once (decrypting and parsing release the GIL for the most part).
_READERS = 8
#: Checkpoints deleted at once.
_DELETERS = 4


@attrs.frozen
class PlanForget:
    """One plan's part of a forget: its policy, the decision, what was done."""

    plan: str
    policy: RetentionPolicy
    decision: Decision
    #: Each checkpoint's creation time (ISO UTC), by id.
    created: Mapping[str, str]
    #: Deleted (empty on a dry run).
    removed: tuple[str, ...] = ()
    #: Not deleted after all, and why (busy meanwhile, a delete that failed).
    failed: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class PruneReport:
    """What :func:`prune` freed and removed."""

    freed_chunks: int = 0
    dropped_refs: int = 0
    finished_deletes: tuple[str, ...] = ()
    purged: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()


@attrs.frozen
class ForgetReport:
    """What :func:`forget` decided and did, plan by plan, and its prune."""

    bank: str
    dry_run: bool
    plans: tuple[PlanForget, ...]
    prune: PruneReport | None = None
    #: Seconds spent reading the records and deciding; deleting; pruning.
    decide_seconds: float = 0.0
    delete_seconds: float = 0.0
    prune_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every checkpoint to go went."""
        return not any(p.failed for p in self.plans)


def _parse(created_at: str) -> dt.datetime:
    return dt.datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=dt.timezone.utc)


def _records(store: CheckpointStore, plan: str | None) -> list[CheckpointRecord]:
    """Every readable record of the bank (or of one plan), read a few at a time."""
    checkpoints = store.list(plan=plan, limit=None)

    def read(checkpoint: Checkpoint) -> CheckpointRecord | None:
        try:
            return checkpoint.record
        except BankError:  # damaged or removed meanwhile: no rule may count it
            return None
    with ThreadPoolExecutor(_READERS) as pool:
        return [r for r in pool.map(read, checkpoints) if r is not None]


def _busy(store: CheckpointStore, ids: Iterable[str]) -> set[str]:
    return {i for i in ids if Checkpoint(store.bank, i).busy}


def plan_decision(records: Sequence[CheckpointRecord], policy: RetentionPolicy, *,
                  store: CheckpointStore, now: dt.datetime,
                  tz: dt.tzinfo | None = None) -> Decision:
    """The decision over one plan's records; the leases of those it would
    remove read, so that a busy one is kept instead."""
    candidates = [Candidate(r.id, _parse(r.created_at), r.status, frozenset(r.tags))
                  for r in records]
    first = decide(candidates, policy, now=now, tz=tz)
    busy = _busy(store, first.removed_ids)
    if not busy:
        return first
    candidates = [attrs.evolve(c, busy=c.id in busy) for c in candidates]
    return decide(candidates, policy, now=now, tz=tz)


def _policy_of(records: Sequence[CheckpointRecord]) -> RetentionPolicy | None:
    """The ``retention`` of the plan kept in the newest of ``records``."""
    newest = max(records, key=lambda r: r.created_at, default=None)
    return None if newest is None else newest.plan.retention


def forget(
    store: CheckpointStore,
    policy: RetentionPolicy | None = None,
    *,
    plans: Sequence[str] | None = None,
    plan_policies: Mapping[str, RetentionPolicy] | None = None,
    dry_run: bool = False,
    prune_after: bool | None = None,
    purge_after: float | None = None,
    executor: str | Executor = "serial",
    owner: str,
    now: dt.datetime | None = None,
    tz: dt.tzinfo | None = None,
    options: Mapping[str, Any] | None = None,
) -> ForgetReport:
    """Apply retention policies to a bank's plans; see the module.

    Parameters
    ----------
    store : CheckpointStore
        The bank.
    policy : RetentionPolicy, optional
        The command line's rules, over each plan's own.
    plans : sequence of str, optional
        The plans (by name) to forget in; every plan of the bank if None.
    plan_policies : mapping, optional
        A plan's own policy by name (from its plan file), instead of the one
        kept in its newest checkpoint.
    dry_run : bool
        Decide and report, change nothing.
    prune_after : bool, optional
        Prune after the deletes; None: when a plan's policy says ``prune``.
    purge_after : float, optional
        Tombstones older than this many seconds are removed by the prune;
        None: the policies' ``purge_after``, else none.
    executor : str or Executor
        Runs each delete's hooks.
    owner : str
        Who deletes (the leases' owner).
    now : datetime, optional
        The time it is (Karbor's ``retention_duration``, tombstones' age).
    tz : tzinfo, optional
        The zone restic's buckets are counted in (the local one if None).

    Returns
    -------
    ForgetReport

    Raises
    ------
    BankError
        If a plan named holds no checkpoint, or no plan has any rule (restic
        removes nothing then, and says so; so does this).
    """
    started = time.monotonic()
    now = now or dt.datetime.now(dt.timezone.utc)
    given = policy or RetentionPolicy()
    groups = _groups(store, plans)
    decided: list[PlanForget] = []
    for name, records in sorted(groups.items()):
        own = (plan_policies or {}).get(name) or _policy_of(records) or RetentionPolicy()
        chosen = own.merged(given)
        decision = plan_decision(records, chosen, store=store, now=now, tz=tz)
        decided.append(PlanForget(name, chosen, decision,
                                  {r.id: r.created_at for r in records}))
    if decided and all(p.policy.empty for p in decided):
        raise BankError("forget: no rule given, nothing to do: give --keep-last N, "
                        "--keep-daily N, --keep-within 30d... (see `protectflow forget -h`), "
                        "or a 'retention:' in the plan")
    decide_seconds = time.monotonic() - started
    if dry_run:
        return ForgetReport(store.bank.url, True, tuple(decided),
                            decide_seconds=decide_seconds)
    started = time.monotonic()
    # One executor for every delete (making one per delete reads the entry points).
    runner = get_executor(executor) if isinstance(executor, str) else executor
    done = tuple(_apply(store, p, executor=runner, owner=owner, options=options or {})
                 for p in decided)
    delete_seconds = time.monotonic() - started
    wanted = prune_after if prune_after is not None else any(p.policy.prune for p in decided)
    purge = purge_after if purge_after is not None else min(
        (p.policy.purge_after for p in decided if p.policy.purge_after is not None),
        default=None)
    pruned = None
    started = time.monotonic()
    if wanted or purge is not None:
        pruned = prune(store, purge_after=purge, now=now, executor=executor, owner=owner,
                       sweep=wanted)
    return ForgetReport(store.bank.url, False, done, pruned, decide_seconds=decide_seconds,
                        delete_seconds=delete_seconds,
                        prune_seconds=time.monotonic() - started)


def _groups(store: CheckpointStore,
            plans: Sequence[str] | None) -> dict[str, list[CheckpointRecord]]:
    groups: dict[str, list[CheckpointRecord]] = {}
    if plans:
        for name in plans:
            records = _records(store, name)
            if not records:
                raise CheckpointNotFoundError(
                    f"forget: plan {name!r} has no checkpoint in {store.bank.url}; "
                    "`protectflow checkpoints list` shows the plans it holds")
            groups[name] = records
        return groups
    for record in _records(store, None):
        groups.setdefault(record.plan_name, []).append(record)
    return groups


def _apply(store: CheckpointStore, planned: PlanForget, *, executor: str | Executor,
           owner: str, options: Mapping[str, Any]) -> PlanForget:
    """Delete the checkpoints ``planned`` removes, a few at once: deletes of
    different checkpoints share nothing but chunks, which the chunk store's
    protocol lets any number of deleters (and protects) release at once."""
    def delete(checkpoint_id: str) -> str | None:
        """Why it was not deleted; None once deleted."""
        try:
            result = delete_checkpoint(store.get(checkpoint_id), executor=executor,
                                       owner=owner, settings=RunSettings.of(options))
        except CheckpointBusyError as err:
            return f"kept: it became busy ({err})"
        except BankError as err:
            return str(err)
        if result.report.ok:
            return None
        return (f"its delete failed: `protectflow checkpoints show {checkpoint_id}` says "
                "why; `protectflow prune` retries")

    ids = planned.decision.removed_ids
    with ThreadPoolExecutor(_DELETERS) as pool:
        outcomes = list(pool.map(delete, ids))
    removed = tuple(i for i, why in zip(ids, outcomes, strict=True) if why is None)
    failed = tuple((i, why) for i, why in zip(ids, outcomes, strict=True) if why is not None)
    return attrs.evolve(planned, removed=removed, failed=failed)


def prune(store: CheckpointStore, *, purge_after: float | None = None,
          now: dt.datetime | None = None, executor: str | Executor = "serial",
          owner: str = "protectflow-prune", sweep: bool = True) -> PruneReport:
    """Free what no remaining checkpoint needs; see the module.

    Parameters
    ----------
    purge_after : float, optional
        Remove the tombstones of checkpoints deleted longer ago than this
        many seconds (None: keep them).
    sweep : bool
        Free unreferenced chunks and orphan refs, and finish failed deletes
        (False: only resolve and purge).

    Raises
    ------
    BankError
        If the bank cannot be read or refuses a write.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    resolved = collect(store.bank, store, now=now.timestamp()).changed
    finished: list[str] = []
    dropped = freed = 0
    if sweep:
        finished = _finish_deletes(store, executor=executor, owner=owner)
        dropped, freed = _sweep(store)
    purged = [] if purge_after is None else _purge(store, now - dt.timedelta(
        seconds=purge_after))
    return PruneReport(freed, dropped, tuple(finished), tuple(purged), tuple(resolved))


def _finish_deletes(store: CheckpointStore, *, executor: str | Executor,
                    owner: str) -> list[str]:
    finished = []
    for record in _records(store, None):
        if record.status != ERROR_DELETING:
            continue
        with contextlib.suppress(BankError):
            checkpoint = store.get(record.id)
            if delete_checkpoint(checkpoint, executor=executor, owner=owner,
                                 settings=RunSettings()).report.ok:
                finished.append(record.id)
    return finished


def _state(store: CheckpointStore, checkpoint_id: str) -> str | None:
    """A checkpoint's status as prune sees it: None when it has no record
    (removed), ``?`` when its record does not read (its refs are kept)."""
    try:
        return Checkpoint(store.bank, checkpoint_id).reload().status
    except CheckpointNotFoundError:
        return None
    except BankError:
        return "?"


def _sweep(store: CheckpointStore) -> tuple[int, int]:
    """Drop the refs of checkpoints removed or deleted; delete the chunks
    left without a ref that no live manifest names. Returns ``(refs
    dropped, chunks deleted)``.

    The chunks are listed before the refs: a chunk stored after its listing
    is not looked at, and one whose ref comes after the refs' listing is
    kept by :meth:`ChunkStore.delete_unreferenced`, which lists its refs
    again under the chunk's deletion marker (the chunk store's protocol).
    """
    bank = store.bank
    chunks = {key.rsplit("/", 1)[1] for key in bank.iter_objects(_CHUNKS)}
    owners: dict[str, set[str]] = {}
    for key in bank.iter_objects(REFS):
        _, _, digest, owner = key.split("/", 3)
        owners.setdefault(digest, set()).add(unsegment(owner))
    states: dict[str, str | None] = {}
    dropped = 0
    for digest, held in sorted(owners.items()):
        for owner in sorted(held):
            checkpoint_id = owner.split("@", 1)[0]
            if checkpoint_id not in states:
                states[checkpoint_id] = _state(store, checkpoint_id)
            if states[checkpoint_id] in (None, DELETED):
                ChunkStore(bank, owner).drop_ref(digest)
                held.discard(owner)
                dropped += 1
    candidates = sorted(d for d in chunks if not owners.get(d))
    named = live_names(bank, candidates, exclude="") if candidates else {}
    freed = 0
    for digest in candidates:
        if digest in named:
            continue  # its refs were lost: `checkpoints repair` makes them again
        if ChunkStore(bank, "protectflow-prune@-").delete_unreferenced(digest):
            freed += 1
    return dropped, freed


def _purge(store: CheckpointStore, before: dt.datetime) -> list[str]:
    """Remove the tombstones of checkpoints deleted before ``before``."""
    purged = []
    for record in _records(store, None):
        if record.status != DELETED or _parse(record.updated_at) >= before:
            continue
        checkpoint = Checkpoint(store.bank, record.id)
        if checkpoint.busy:
            continue
        with contextlib.suppress(BankError):
            store.remove(record.id)
            purged.append(record.id)
    return purged

