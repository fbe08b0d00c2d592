"""The operations as library calls: plan -> graph -> DAG -> checkpoint ->
executor -> statuses.

Every check that can fail on bad input (the plan, the parameters, the
executor's name, the checkpoint's state) runs before anything is written
(:mod:`~protectflow.operations.preflight`). Protect saves the plan, the
resource graph and the DAG in the checkpoint; restore, verify, copy and
delete work from that saved graph, never from live discovery. The framework,
not the plugins, records each resource's status and reason from the run
(:mod:`~protectflow.operations.outcomes`); an operation holds its checkpoint's
lease while it runs (:mod:`~protectflow.operations.lease`) and journals its
hooks so that :func:`resume` can continue it
(:mod:`~protectflow.operations.resume`). :func:`run` runs a plan or a
HookDAG as it is, keeping no checkpoint.

Checking a checkpoint comes in two depths, as restic's ``check``:
:func:`check` authenticates every object of the checkpoint and makes sure
every chunk it references exists, without reading any chunk (the metadata
check); :func:`verify` runs that check first, then the plugins' verify hooks,
which read and check every chunk (the full check, ``--read-data``).

Past 400 lines on purpose: this module is the operations' whole public
surface, one short entry point each, as the package layout promises; the
work behind them lives in the modules named above and in ``runs``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import attrs

from protectflow.bank import Bank, Checkpoint, CheckpointStore, default_bank_url
from protectflow.bank.catalog.check import CheckReport, check_checkpoint
from protectflow.bank.catalog.record import normal_tags
from protectflow.compiler import Plan, load_plan
from protectflow.dag import HookDAG
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import BankError, CorruptObjectError
from protectflow.executors import Executor, RunReport
from protectflow.operations.forget import ForgetReport, PruneReport, forget, prune
from protectflow.operations.journal import JournalMeta
from protectflow.operations.lease import default_owner, lease_ttl
from protectflow.operations.maintenance import (
    GcReport,
    ReindexReport,
    RepairReport,
    gc,
    reindex,
    repair,
)
from protectflow.operations.outcomes import OperationResult, next_steps, note_verification
from protectflow.operations.prepared import Prepared, RunSettings, prepare_plan
from protectflow.operations.resume import resume_checkpoint
from protectflow.operations.runs import (
    copy_checkpoint,
    delete_checkpoint,
    protect_into,
    restore_or_verify,
)
from protectflow.operations.scratch import Runnable, prepare_run, run_scratch
from protectflow.plugins.providers import Provider

__all__ = [
    "CheckReport",
    "ForgetReport",
    "GcReport",
    "OperationResult",
    "Prepared",
    "PruneReport",
    "ReindexReport",
    "RepairReport",
    "RunSettings",
    "Runnable",
    "check",
    "copy",
    "default_owner",
    "delete",
    "forget",
    "gc",
    "next_steps",
    "open_store",
    "prepare_run",
    "protect",
    "prune",
    "reindex",
    "repair",
    "restore",
    "resume",
    "run",
    "verify",
]

#: A bank as the operations take it: a URL, a folder, or a Bank.
BankLike: TypeAlias = str | os.PathLike[str] | Bank


#: A checkpoint as the operations take it: its id (in ``bank``), or the
#: Checkpoint itself, its record as read (``bank`` is then its own).
CheckpointLike: TypeAlias = str | Checkpoint


def _get(bank: BankLike | None, checkpoint: CheckpointLike) -> Checkpoint:
    """The checkpoint ``checkpoint`` names in ``bank``, its record read
    (once: an operation reads it from this object).

    Raises
    ------
    CheckpointNotFoundError
        When there is no such checkpoint.
    """
    if isinstance(checkpoint, Checkpoint):
        return checkpoint
    return open_store(bank).get(checkpoint)


def open_store(bank: BankLike | None = None, *, fsync: bool = True) -> CheckpointStore:
    """The checkpoints of ``bank`` (a URL, a folder, or the default bank);
    ``fsync`` as :class:`~protectflow.bank.Bank`'s, for a bank given by name.

    Raises
    ------
    BankError
        When the bank URL cannot be used.
    """
    if isinstance(bank, Bank):
        return CheckpointStore(bank)
    url = os.fspath(bank) if bank is not None else default_bank_url()
    return CheckpointStore(Bank(url, fsync=fsync))


def protect(
    plan: Plan | str | os.PathLike[str],
    *,
    bank: BankLike | None = None,
    executor: str | Executor = "threads",
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    owner: str | None = None,
    fsync: bool = True,
    provider: Provider | None = None,
    settings: RunSettings | None = None,
    tags: Iterable[str] = (),
    taken_at: float | None = None,
    **options: Any,
) -> OperationResult:
    """Protect the resources of ``plan`` into a new checkpoint.

    The checkpoint carries ``tags`` and the plan's own ``tags``; its
    ``created_at`` is ``taken_at`` (epoch seconds: a scheduler's clock) when
    given, else the current time.

    ``bank`` defaults to the plan's ``bank``, then to its provider's, then
    to :func:`default_bank_url`; the provider's plugin configuration reaches
    its plugins (``provider``: that provider already resolved, as the
    command line does to choose the bank); the run's options are
    ``settings`` (a :class:`RunSettings`) with ``options`` over them
    (``workers``, ``keep_going``, ``limits``, ``listeners``...:
    :meth:`RunSettings.of`). ``fsync=False`` writes a
    local bank without fsync (a bank given by name): as safe when the process
    dies, but a power loss may take the checkpoint with it.

    Raises
    ------
    PlanError, PluginError
        Before anything is written, for a bad plan or bad parameters.
    PreflightError
        Before anything is written, listing every resource a plugin's checks
        found unready (a folder that is not there, a command not on PATH).
    ExecutorError
        Before anything is written, for an unknown executor.
    """
    settings = RunSettings.of(options, base=settings)
    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    tags = normal_tags((*plan.tags, *tags))  # before anything is written
    prepared = prepare_plan(plan, "protect", parameters=parameters, executor=executor,
                            settings=settings, provider=provider)
    prepared.check_resources()
    if bank is None:
        bank = plan.bank or prepared.provider.bank
    store = open_store(bank, fsync=fsync)
    owner = owner or default_owner()
    kept = plan if parameters is None else attrs.evolve(
        plan, parameters={k: dict(v) for k, v in parameters.items()})
    checkpoint = store.create(kept, ResourceGraph.from_dag(prepared.dag), prepared.fingerprint,
                              owner, lease_ttl=lease_ttl(), tags=tags, created_at=taken_at)
    meta = JournalMeta(owner, kept, plan_source=plan.source if parameters is None else None)
    return protect_into(checkpoint, prepared, meta=meta)


def restore(
    checkpoint_id: CheckpointLike,
    *,
    bank: BankLike | None = None,
    executor: str | Executor = "threads",
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    owner: str | None = None,
    settings: RunSettings | None = None,
    resources: Sequence[str] | None = None,
    dependencies: bool = True,
    **options: Any,
) -> OperationResult:
    """Restore the resources of an ``available`` checkpoint: all of them, or
    ``resources`` (``TYPE#ID`` keys) and what they depend on (their
    children in the graph, unless not ``dependencies``).

    Restore hooks publish new resource ids in ``new_resources``; the run
    record keeps them.

    Raises
    ------
    BankError
        When there is no such checkpoint, it is not ``available``, or another
        operation holds it.
    PlanError, PluginError, ExecutorError
        As :func:`protect`, before anything runs.
    """
    return restore_or_verify("restore", _get(bank, checkpoint_id), executor=executor,
                             parameters=parameters, owner=owner or default_owner(),
                             settings=RunSettings.of(options, base=settings),
                             resources=resources, dependencies=dependencies)


def verify(
    checkpoint_id: CheckpointLike,
    *,
    bank: BankLike | None = None,
    executor: str | Executor = "threads",
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    owner: str | None = None,
    settings: RunSettings | None = None,
    **options: Any,
) -> OperationResult:
    """Check that an ``available`` checkpoint is whole: first the metadata
    check (:func:`check`), whose every problem lands in the result's
    ``problems``, then the plugins' verify hooks, which read every chunk.
    The result is ``ok`` only when both found nothing.

    Raises
    ------
    BankError, PlanError, PluginError, ExecutorError
        As :func:`restore`.
    CorruptObjectError
        For a BankError raised after the metadata check found problems (a
        record that fails authentication, say), listing them.
    """
    if isinstance(checkpoint_id, Checkpoint):
        bank, checkpoint_id = checkpoint_id.bank, checkpoint_id.id
    store = open_store(bank)
    found = check_checkpoint(store.bank, checkpoint_id)
    try:
        result = restore_or_verify("verify", store.get(checkpoint_id), executor=executor,
                                   parameters=parameters, owner=owner or default_owner(),
                                   settings=RunSettings.of(options, base=settings))
    except BankError as err:
        if found.ok:
            raise
        raise CorruptObjectError(f"{err}; the metadata check of checkpoint {checkpoint_id} "
                                 "found: " + "; ".join(found.problems)) from err
    result = attrs.evolve(result, problems=found.problems)
    note_verification(result)
    return result


def check(
    checkpoint_id: str,
    *,
    bank: BankLike | None = None,
    read_data: bool = False,
    workers: int = 4,
) -> CheckReport:
    """Authenticate every object of a checkpoint (record, statuses, runs,
    journals, leases, the plugins' manifests) and make sure every chunk it
    references exists, reporting every problem rather than the first; with
    ``read_data``, also read every such chunk and check it against its name.
    Nothing is written and no plugin runs, so this works on a checkpoint of
    any status.

    Returns
    -------
    CheckReport
        What was checked and every problem found; ``ok`` when there are none.

    Raises
    ------
    BankError
        When the checkpoint has no objects at all, or the bank cannot be
        unlocked (a missing key, a wrong password).
    """
    return check_checkpoint(open_store(bank).bank, checkpoint_id, read_data=read_data,
                            workers=workers)


def copy(
    checkpoint_id: CheckpointLike,
    *,
    to: BankLike,
    bank: BankLike | None = None,
    executor: str | Executor = "threads",
    owner: str | None = None,
    settings: RunSettings | None = None,
    **options: Any,
) -> OperationResult:
    """Copy an ``available`` checkpoint into the bank ``to``.

    The framework copies the checkpoint's own objects; the copy hooks get the
    new checkpoint as ``target_checkpoint`` to copy what their plugin keeps
    elsewhere in the bank (shared chunks, say). The source is marked copied
    (its history says where to); the copy ends ``available``, or ``error``.

    Raises
    ------
    BankError, PlanError, PluginError, ExecutorError
        As :func:`restore`, and when ``to`` is the checkpoint's own bank.
    """
    settings = RunSettings.of(options, base=settings)
    source = _get(bank, checkpoint_id)
    target_store = open_store(to)
    target_store.bank.create_root()  # an unusable --to fails before the source changes
    if source.bank.same_bank(target_store.bank):  # a symlink, another path or URL of it
        alias = ("" if target_store.bank.url == source.bank.url else
                 f" ({source.bank.url} under another name; both hold one bank id)")
        raise BankError(f"copy: {target_store.bank.url} is checkpoint {source.id}'s own bank; "
                        f"give another bank with --to{alias}")
    return copy_checkpoint(source, target_store, executor=executor,
                           owner=owner or default_owner(), settings=settings)


def delete(
    checkpoint_id: CheckpointLike,
    *,
    bank: BankLike | None = None,
    executor: str | Executor = "threads",
    owner: str | None = None,
    settings: RunSettings | None = None,
    **options: Any,
) -> OperationResult:
    """Delete a checkpoint's data; its record stays, as a ``deleted`` tombstone.

    Raises
    ------
    BankError
        When there is no such checkpoint, it cannot be deleted from its
        status, or another operation holds it.
    """
    return delete_checkpoint(_get(bank, checkpoint_id), executor=executor,
                             owner=owner or default_owner(),
                             settings=RunSettings.of(options, base=settings))


def resume(
    checkpoint_id: CheckpointLike,
    *,
    bank: BankLike | None = None,
    executor: str | Executor = "threads",
    plan: Plan | str | os.PathLike[str] | None = None,
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    owner: str | None = None,
    settings: RunSettings | None = None,
    **options: Any,
) -> OperationResult:
    """Continue the interrupted or failed operation of a checkpoint from its journal.

    Protect, restore and verify resume, on any executor; a delete is finished
    (run again: it is idempotent); a copy is refused with what to do. Hooks the journal
    records as succeeded are not run again (their outputs and
    ``new_resources`` come from the journal); the others run, those that were
    running at the crash included. The lease of a crashed owner is taken over
    once it expires, or at once when the owner was a process of this host
    that no longer exists. ``plan`` (a protect's plan, re-read) must be the
    plan the journal was written for; by default the plan saved in the
    checkpoint is used, and the plan file it came from is checked if it still
    exists. Commands and targets come from the operator, never from the bank
    alone (:mod:`~protectflow.operations.confirm`): a protect whose record
    names commands (an application's freeze and thaw) resumes only with a plan
    of the operator's that gives them, and a restore or verify resumes only
    with ``parameters`` (its ``target``...) equal to those its journal recorded.

    Raises
    ------
    NotResumableError
        When there is nothing to resume, the operation cannot be resumed, the
        plan, the plugins' versions or the compiled DAG changed since the
        journal was written, or the record or journal asks for commands or
        parameters the operator did not give (the message names what differs).
    CheckpointBusyError
        When a live operation holds the checkpoint.
    CheckpointNotFoundError
        When there is no such checkpoint.
    """
    return resume_checkpoint(_get(bank, checkpoint_id), executor=executor, plan=plan,
                             owner=owner or default_owner(), parameters=parameters,
                             settings=RunSettings.of(options, base=settings))


def run(
    source: Runnable | Plan | HookDAG | str | os.PathLike[str],
    *,
    operation: str | None = None,
    executor: str | Executor = "threads",
    settings: RunSettings | None = None,
    **options: Any,
) -> RunReport:
    """Run a plan or a HookDAG as it is, keeping no checkpoint (``protectflow run``).

    ``source`` is a plan or a HookDAG (an object or a file; a plan is compiled
    for ``operation``, by default protect), or what :func:`prepare_run` made
    of one. A protect's hooks get a checkpoint in a throw-away bank that is
    gone when the run ends; the other operations' hooks get none. ``options``
    are :func:`protectflow.executors.run_dag`'s; a hook's failure raises
    nothing (the report says).

    Raises
    ------
    PlanError, PluginError, DagFormatError
        For a bad plan, parameters or DAG file.
    ExecutorError
        Before anything runs, for an unknown executor, a limit that names no
        resource type or pool, or an ``operation`` that is not the DAG's.
    PreflightError
        Before anything runs, for a protect whose sources the plugins find
        missing (every problem at once).
    """
    settings = RunSettings.of(options, base=settings)
    runnable = prepare_run(source, operation=operation, registry=settings.registry)
    return run_scratch(runnable, executor, settings)
