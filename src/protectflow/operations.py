"""The five operations as library calls: plan -> graph -> DAG -> checkpoint ->
executor -> statuses.

Every check that can fail on bad input (the plan, the parameters, the
executor's name, the checkpoint's state) runs before anything is written.
Protect saves the plan, the resource graph and the DAG in the checkpoint;
restore, verify, copy and delete work from that saved graph, never from live
discovery. The framework, not the plugins, records each resource's status and
reason from the run.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from protectflow import _recovery
from protectflow import _steps as steps
from protectflow.bank import Bank, Checkpoint, CheckpointStore, RunRecord, default_bank_url
from protectflow.bank.journal import JournalRun
from protectflow.compiler import Plan, compile_plan, load_plan
from protectflow.dag import HookDAG, jsonio
from protectflow.errors import BankError
from protectflow.executors import RunReport, run_dag
from protectflow.executors.base import Executor

__all__ = [
    "OperationResult",
    "copy",
    "default_owner",
    "delete",
    "open_store",
    "protect",
    "restore",
    "resume",
    "verify",
]

@attrs.frozen
class OperationResult:
    """What an operation did: its checkpoint, its run report, and for
    restore, verify, copy and delete the run record kept in the bank."""

    operation: str
    checkpoint: Checkpoint
    report: RunReport
    resources: dict[str, dict[str, Any]]
    run: RunRecord | None = None
    target: Checkpoint | None = None

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def new_resources(self) -> dict[str, Any]:
        return dict(self.run.new_resources) if self.run is not None else {}


def default_owner() -> str:
    """``user@host:pid``: who holds a lease, for people reading ``checkpoints show``."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


def open_store(bank: str | os.PathLike[str] | Bank | None = None, *,
               fsync: bool = True) -> CheckpointStore:
    """The checkpoints of ``bank`` (a URL, a folder, or the default bank);
    ``fsync`` as :class:`~protectflow.bank.Bank`'s, for a bank given by name."""
    if isinstance(bank, Bank):
        return CheckpointStore(bank)
    url = os.fspath(bank) if bank is not None else default_bank_url()
    return CheckpointStore(Bank(url, fsync=fsync))


def protect(
    plan: Plan | str | os.PathLike[str],
    *,
    bank: str | os.PathLike[str] | Bank | None = None,
    executor: str | Executor = "threads",
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    owner: str | None = None,
    fsync: bool = True,
    **options: Any,
) -> OperationResult:
    """Protect the resources of ``plan`` into a new checkpoint.

    ``bank`` defaults to the plan's ``bank``, then to :func:`default_bank_url`;
    ``options`` go to :func:`protectflow.executors.run_dag` (``workers``,
    ``keep_going``, ``limits``, ``listeners``...). ``fsync=False`` writes a
    local bank without fsync (a bank given by name): as safe when the process
    dies, but a power loss may take the checkpoint with it.

    Raises
    ------
    PlanError, PluginError
        Before anything is written, for a bad plan or bad parameters.
    ExecutorError
        Before anything is written, for an unknown executor.
    """
    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    dag = compile_plan(plan, "protect", parameters=parameters)
    runner = steps.executor(executor, options, dag, plan.to_json())
    store = open_store(bank if bank is not None else plan.bank, fsync=fsync)
    owner = owner or default_owner()
    plan_json = plan.to_json()
    if parameters is not None:
        plan_json["parameters"] = {k: dict(v) for k, v in parameters.items()}
    graph_json = steps.graph_json(dag)
    checkpoint = store.create(
        plan_json, graph_json, jsonio.fingerprint(dag), owner, lease_ttl=steps.lease_ttl()
    )
    source = plan.source if parameters is None else None
    return _protect_into(checkpoint, dag, runner, owner=owner, plan_json=plan_json,
                         plan_source=source, options=options)


def _protect_into(
    checkpoint: Checkpoint, dag: HookDAG, runner: Executor, *, owner: str,
    plan_json: dict[str, Any], plan_source: str | None, options: dict[str, Any],
    resumes: str | None = None, redo: Iterable[str] = (),
) -> OperationResult:
    """Run a protect DAG into a checkpoint this process holds (new or resumed)."""
    with steps.renewing(checkpoint), steps.failing_on_crash(checkpoint, "error"):
        checkpoint.bank.update_object(checkpoint.prefix + "dag.json", jsonio.dumps(dag))
        journal = _recovery.start_journal(
            checkpoint, dag, executor=runner.name, owner=owner, plan_json=plan_json,
            plan_source=plan_source, resumes=resumes, redo=redo)
        report = None
        try:
            report = run_dag(dag, runner, checkpoint=checkpoint, journal=journal, **options)
            journal.finish(report.state)
        finally:
            cleanup = ({} if report is not None and report.ok
                       else steps.on_failure(dag, checkpoint, options.get("registry")))
        resources = steps.statuses(dag, report)
        for key, error in cleanup.items():
            reason = resources[key]["reason"]
            resources[key]["reason"] = f"{reason}; {error}" if reason else error
        checkpoint.set_resource_statuses(resources)
        checkpoint.transition("available" if report.ok else "error", reason=steps.reason(report),
                              next_steps=None if report.ok else _recovery.next_steps(checkpoint.id))
    return OperationResult("protect", checkpoint, report, resources)


def restore(
    checkpoint_id: str,
    *,
    bank: str | os.PathLike[str] | Bank | None = None,
    executor: str | Executor = "threads",
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    owner: str | None = None,
    **options: Any,
) -> OperationResult:
    """Restore the resources of an ``available`` checkpoint.

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
    return _run_on_checkpoint("restore", checkpoint_id, bank=bank, executor=executor,
                              parameters=parameters, owner=owner, options=options)


def verify(
    checkpoint_id: str,
    *,
    bank: str | os.PathLike[str] | Bank | None = None,
    executor: str | Executor = "threads",
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    owner: str | None = None,
    **options: Any,
) -> OperationResult:
    """Check that an ``available`` checkpoint's data is whole (see :func:`restore`).

    Raises
    ------
    BankError, PlanError, PluginError, ExecutorError
        As :func:`restore`.
    """
    return _run_on_checkpoint("verify", checkpoint_id, bank=bank, executor=executor,
                              parameters=parameters, owner=owner, options=options)


def copy(
    checkpoint_id: str,
    *,
    to: str | os.PathLike[str] | Bank,
    bank: str | os.PathLike[str] | Bank | None = None,
    executor: str | Executor = "threads",
    owner: str | None = None,
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
    store = open_store(bank)
    source = store.get(checkpoint_id)
    target_store = open_store(to)
    target_store.bank.create_root()  # an unusable --to fails before the source changes
    if target_store.bank == store.bank:
        raise BankError(f"copy: {to} is checkpoint {checkpoint_id}'s own bank; "
                        "give another bank with --to")
    steps.require_status(source, "copy")
    dag = steps.checkpoint_dag(source, "copy", None)
    runner = steps.executor(executor, options, dag, source.plan)
    owner = owner or default_owner()
    source.acquire("copy", owner, ttl=steps.lease_ttl())
    try:
        with steps.renewing(source):
            source.transition("copying")
            outcome = "copy interrupted"
            try:
                target = target_store.create(
                    source.plan, source.resource_graph, source.dag_fingerprint, owner,
                    copied_from={"bank": store.bank.url, "checkpoint": source.id},
                    lease_ttl=steps.lease_ttl(),
                )
                with steps.renewing(target), steps.failing_on_crash(target, "error"):
                    steps.copy_objects(source, target)
                    journal = _recovery.start_journal(source, dag, executor=runner.name,
                                                      owner=owner, plan_json=source.plan)
                    report = run_dag(dag, runner, checkpoint=source, target_checkpoint=target,
                                     journal=journal, **options)
                    journal.finish(report.state)
                    resources = steps.statuses(dag, report)
                    target.set_resource_statuses(source.resources)
                    target.transition("available" if report.ok else "error",
                                      reason=steps.reason(report))
                outcome = (f"copied to {target_store.bank.url}" if report.ok
                           else f"copy failed: {steps.reason(report)}")
            finally:
                # Whatever happened to the copy, the source is as good as before.
                source.transition("available", reason=outcome)
    finally:
        source.release()
    run = steps.record_run(source, "copy", owner, report, resources)
    return OperationResult("copy", source, report, resources, run, target)


def delete(
    checkpoint_id: str,
    *,
    bank: str | os.PathLike[str] | Bank | None = None,
    executor: str | Executor = "threads",
    owner: str | None = None,
    **options: Any,
) -> OperationResult:
    """Delete a checkpoint's data; its record stays, as a ``deleted`` tombstone.

    Raises
    ------
    BankError
        When there is no such checkpoint, it cannot be deleted from its
        status, or another operation holds it.
    """
    store = open_store(bank)
    checkpoint = store.get(checkpoint_id)
    steps.require_status(checkpoint, "delete")
    dag = steps.checkpoint_dag(checkpoint, "delete", None)
    runner = steps.executor(executor, options, dag, checkpoint.plan)
    owner = owner or default_owner()
    checkpoint.acquire("delete", owner, ttl=steps.lease_ttl())
    try:
        with steps.renewing(checkpoint), steps.failing_on_crash(checkpoint, "error_deleting"):
            checkpoint.transition("deleting")
            journal = _recovery.start_journal(checkpoint, dag, executor=runner.name,
                                              owner=owner, plan_json=checkpoint.plan)
            report = run_dag(dag, runner, checkpoint=checkpoint, journal=journal, **options)
            journal.finish(report.state)
            resources = steps.statuses(dag, report)
            if report.ok:
                for key in checkpoint.bank.list_objects(checkpoint.prefix + "data/"):
                    checkpoint.bank.delete_object(key)
            checkpoint.set_resource_statuses(resources)
            checkpoint.transition("deleted" if report.ok else "error_deleting",
                                  reason=steps.reason(report))
    finally:
        checkpoint.release()
    run = steps.record_run(checkpoint, "delete", owner, report, resources)
    return OperationResult("delete", checkpoint, report, resources, run)


def resume(
    checkpoint_id: str,
    *,
    bank: str | os.PathLike[str] | Bank | None = None,
    executor: str | Executor = "threads",
    plan: Plan | str | os.PathLike[str] | None = None,
    owner: str | None = None,
    **options: Any,
) -> OperationResult:
    """Continue the interrupted or failed operation of a checkpoint from its journal.

    Protect, restore and verify resume, on any executor: hooks the journal
    records as succeeded are not run again (their outputs and
    ``new_resources`` come from the journal); the others run, those that were
    running at the crash included. The lease of a crashed owner is taken over
    once it expires, or at once when the owner was a process of this host
    that no longer exists. ``plan`` (a protect's plan, re-read) must be the
    plan the journal was written for; by default the plan saved in the
    checkpoint is used, and the plan file it came from is checked if it still
    exists.

    Raises
    ------
    BankError
        When there is nothing to resume, the operation cannot be resumed, a
        live operation holds the checkpoint, or the plan, the plugins'
        versions or the compiled DAG changed since the journal was written
        (the message names what changed).
    """
    store = open_store(bank)
    checkpoint = store.get(checkpoint_id)
    chain = _recovery.resume_chain(
        checkpoint, unfinished=checkpoint.status in ("protecting", "error"))
    meta = chain[0].meta if chain else {}
    operation = meta.get("operation", "protect")  # no journal: a protect died early
    if operation in ("restore", "verify"):
        return _run_on_checkpoint(operation, checkpoint_id, bank=store.bank, executor=executor,
                                  parameters=meta["parameters"], owner=owner,
                                  options=options, chain=chain)
    if operation != "protect" or checkpoint.record.get("copied_from") is not None:
        raise BankError(f"cannot resume the {operation} of checkpoint {checkpoint_id}: only "
                        f"protect, restore and verify resume; run the {operation} again")
    if checkpoint.status not in ("protecting", "error"):
        raise BankError(f"cannot resume the protect of checkpoint {checkpoint_id}: it is "
                        f"{checkpoint.status}, not protecting or error")
    plan_json = _recovery.plan_to_check(plan, meta, checkpoint.plan)
    dag = steps.checkpoint_dag(checkpoint, "protect", checkpoint.plan.get("parameters"))
    _recovery.check_resumable(chain[0] if chain else None, dag, plan_json,
                              checkpoint=checkpoint)
    journaled = _recovery.completed_hooks(chain)
    redo = _recovery.broken_windows(dag, journaled, options.get("registry"))
    options["completed"] = {k: v for k, v in journaled.items() if k not in redo}
    runner = steps.executor(executor, options, dag, checkpoint.plan)
    owner = owner or default_owner()
    checkpoint.acquire("protect", owner, ttl=steps.lease_ttl(), reclaim_dead=True)
    try:
        if checkpoint.status == "error":
            checkpoint.transition("protecting", reason=f"resumed by {owner}")
    except BaseException:
        checkpoint.release()
        raise
    return _protect_into(checkpoint, dag, runner, owner=owner, plan_json=checkpoint.plan,
                         plan_source=meta.get("plan_source"), options=options,
                         resumes=chain[-1].run_id if chain else None,
                         redo=redo)


# -- the operation bodies -------------------------------------------------------


def _run_on_checkpoint(
    operation: str,
    checkpoint_id: str,
    *,
    bank: str | os.PathLike[str] | Bank | None,
    executor: str | Executor,
    parameters: Mapping[str, Mapping[str, Any]] | None,
    owner: str | None,
    options: dict[str, Any],
    chain: list[JournalRun] | None = None,
) -> OperationResult:
    """Run ``operation`` on a checkpoint; ``chain``: the journal runs it resumes."""
    store = open_store(bank)
    checkpoint = store.get(checkpoint_id)
    steps.require_status(checkpoint, operation, resuming=chain is not None)
    dag = steps.checkpoint_dag(checkpoint, operation, parameters)
    if chain is not None:
        _recovery.check_resumable(chain[0], dag, checkpoint.plan, checkpoint=checkpoint)
        options["completed"] = _recovery.completed_hooks(chain)
    runner = steps.executor(executor, options, dag, checkpoint.plan)
    owner = owner or default_owner()
    checkpoint.acquire(operation, owner, ttl=steps.lease_ttl(), reclaim_dead=chain is not None)
    try:
        with steps.renewing(checkpoint):
            journal = _recovery.start_journal(
                checkpoint, dag, executor=runner.name, owner=owner, plan_json=checkpoint.plan,
                parameters=parameters, resumes=chain[-1].run_id if chain else None)
            report = run_dag(dag, runner, checkpoint=checkpoint, journal=journal, **options)
            journal.finish(report.state)
    finally:
        checkpoint.release()
    resources = steps.statuses(dag, report)
    run = steps.record_run(checkpoint, operation, owner, report, resources)
    return OperationResult(operation, checkpoint, report, resources, run)


