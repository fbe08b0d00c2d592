"""The bodies of the operations, once their checks passed: a protect into
the checkpoint it holds, a restore, verify or delete on its checkpoint, a
copy from one bank into another. Each runs its DAG through
:func:`~protectflow.operations.journal.run_journaled` and settles the
statuses from the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from protectflow.bank import Checkpoint, CheckpointStore, CopiedFrom
from protectflow.bank.catalog.journal import JournalRun
from protectflow.dag import HookDAG, jsonio
from protectflow.executors import Executor, RunReport, run_dag
from protectflow.operations.journal import JournalMeta, run_journaled
from protectflow.operations.lease import failing_on_crash, holding, lease_ttl, renewing
from protectflow.operations.outcomes import (
    OperationResult,
    naming_interrupts,
    next_steps,
    on_failure,
    reason,
    record_run,
    statuses,
    with_cleanup,
)
from protectflow.operations.preflight import (
    check_resources,
    checkpoint_dag,
    make_executor,
    require_status,
)
from protectflow.operations.resume import check_resumable, completed_hooks
from protectflow.states import AVAILABLE, COPYING, DELETED, DELETING, ERROR, ERROR_DELETING

__all__ = ["copy_checkpoint", "delete_checkpoint", "protect_into", "run_on_checkpoint"]


def protect_into(checkpoint: Checkpoint, dag: HookDAG, runner: Executor, *,
                 meta: JournalMeta, options: Mapping[str, Any]) -> OperationResult:
    """Run a protect DAG into a checkpoint this process holds (new or resumed).

    Raises
    ------
    OperationInterrupted
        On Ctrl-C or a termination signal outside the run of hooks (a run
        interrupted inside it ends cancelled, in the result).
    """
    with naming_interrupts(checkpoint, "protect"), renewing(checkpoint), \
            failing_on_crash(checkpoint, ERROR):
        checkpoint.bank.update_object(checkpoint.prefix + "dag.json", jsonio.dumps(dag))
        report = None
        try:
            report = run_journaled(checkpoint, dag, runner, meta=meta, options=options)
        finally:
            # Plugins clean up after a failed or interrupted run (thaw what they froze).
            cleanup = ({} if report is not None and report.ok
                       else on_failure(dag, checkpoint, options.get("registry")))
        resources = with_cleanup(statuses(dag, report), cleanup)
        checkpoint.drop_reserve()  # its space is for these last writes
        checkpoint.set_resource_statuses(resources)
        hint = None if report.ok else next_steps(checkpoint.id, checkpoint.bank.url)
        checkpoint.transition(AVAILABLE if report.ok else ERROR, reason=reason(report),
                              next_steps=hint)
    return OperationResult("protect", checkpoint, report, resources)


def run_on_checkpoint(
    operation: str, checkpoint: Checkpoint, *, executor: str | Executor,
    parameters: Mapping[str, Mapping[str, Any]] | None, owner: str,
    options: Mapping[str, Any], runs: list[JournalRun] | None = None,
    selected: Sequence[str] | None = None, dependencies: bool = True,
) -> OperationResult:
    """Run a restore or verify on ``checkpoint``; ``runs``: the lineage of
    journal runs it resumes, if it resumes; ``selected``: only these (and
    what they depend on, unless not ``dependencies``)."""
    require_status(checkpoint, operation, resuming=runs is not None)
    dag = checkpoint_dag(checkpoint, operation, parameters, resources=selected,
                         dependencies=dependencies)
    if runs is not None:
        check_resumable(runs[0], dag, checkpoint.plan, checkpoint=checkpoint)
        options = {**options, "completed": completed_hooks(runs)}
    runner, run_options = make_executor(executor, options, dag, pools=checkpoint.plan.pools,
                                        provider=checkpoint.plan.provider)
    if runs is None and not checkpoint.bank.writable():
        check_resources(dag, checkpoint=checkpoint, registry=run_options.get("registry"))
        return _run_read_only(operation, checkpoint, dag, runner, run_options)
    if runs is None:  # a resumed restore finds its targets part-written, by itself
        check_resources(dag, checkpoint=checkpoint, registry=run_options.get("registry"))
    meta = JournalMeta(owner, checkpoint.plan, parameters=parameters,
                       resumes=runs[-1].run_id if runs else None)
    with naming_interrupts(checkpoint, operation), \
            holding(checkpoint, operation, owner, reclaim_dead=runs is not None):
        report = run_journaled(checkpoint, dag, runner, meta=meta, options=run_options)
    resources = statuses(dag, report)
    run = record_run(checkpoint, operation, owner, report, resources)
    return OperationResult(operation, checkpoint, report, resources, run)


def _run_read_only(operation: str, checkpoint: Checkpoint, dag: HookDAG, runner: Executor,
                   options: Mapping[str, Any]) -> OperationResult:
    """A restore or verify on a bank that cannot be written (a mounted backup
    disk): no lease, no journal, no run record -- it reads, it cannot be
    resumed, and nothing stops a writer that shares the bank (a read-only
    mount has none)."""
    report = run_dag(dag, runner, checkpoint=checkpoint, **options)
    note = (f"the bank {checkpoint.bank.url} is read-only: the {operation} ran without "
            "taking the checkpoint's lease, keeping a journal or a run record")
    return OperationResult(operation, checkpoint, report, statuses(dag, report), notes=(note,))


def delete_checkpoint(checkpoint: Checkpoint, *, executor: str | Executor, owner: str,
                      options: Mapping[str, Any]) -> OperationResult:
    """Run the delete hooks of ``checkpoint``, then drop its own data."""
    require_status(checkpoint, "delete")
    dag = checkpoint_dag(checkpoint, "delete", None)
    runner, run_options = make_executor(executor, options, dag, pools=checkpoint.plan.pools,
                                        provider=checkpoint.plan.provider)
    with naming_interrupts(checkpoint, "delete"), \
            holding(checkpoint, "delete", owner, reclaim_dead=True), \
            failing_on_crash(checkpoint, ERROR_DELETING):
        if checkpoint.status != DELETING:  # else a dead delete's, finished now
            checkpoint.transition(DELETING)
        report = run_journaled(checkpoint, dag, runner, meta=JournalMeta(owner, checkpoint.plan),
                               options=run_options)
        resources = statuses(dag, report)
        if report.ok:
            for key in checkpoint.bank.list_objects(checkpoint.prefix + "data/"):
                checkpoint.bank.delete_object(key)
        checkpoint.set_resource_statuses(resources)
        checkpoint.transition(DELETED if report.ok else ERROR_DELETING, reason=reason(report))
    run = record_run(checkpoint, "delete", owner, report, resources)
    return OperationResult("delete", checkpoint, report, resources, run)


def copy_checkpoint(source: Checkpoint, target_store: CheckpointStore, *,
                    executor: str | Executor, owner: str,
                    options: Mapping[str, Any]) -> OperationResult:
    """Copy ``source`` into ``target_store``: its own objects, then its copy
    hooks. Whatever happens to the copy, the source ends ``available``."""
    require_status(source, "copy")
    # As in Karbor, copy hooks get the plan's parameters.
    dag = checkpoint_dag(source, "copy", source.plan.parameters)
    runner, run_options = make_executor(executor, options, dag, pools=source.plan.pools,
                                        provider=source.plan.provider)
    with naming_interrupts(source, "copy"), holding(source, "copy", owner):
        source.transition(COPYING)
        outcome = "copy interrupted"
        try:
            target, report = _copy_to(source, target_store, dag, runner, owner=owner,
                                      options=run_options)
            outcome = (f"copied to {target_store.bank.url}" if report.ok
                       else f"copy failed: {reason(report)}")
        finally:
            # Whatever happened to the copy, the source is as good as before.
            source.transition(AVAILABLE, reason=outcome)
    resources = statuses(dag, report)
    run = record_run(source, "copy", owner, report, resources)
    return OperationResult("copy", source, report, resources, run, target)


def _copy_to(source: Checkpoint, target_store: CheckpointStore, dag: HookDAG, runner: Executor,
             *, owner: str, options: Mapping[str, Any]) -> tuple[Checkpoint, RunReport]:
    """Create the copy in ``target_store`` and fill it; it ends ``available``
    or ``error``."""
    target = target_store.create(
        source.plan, source.resource_graph, source.dag_fingerprint, owner,
        copied_from=CopiedFrom(source.bank.url, source.id), lease_ttl=lease_ttl(),
    )
    with renewing(target), failing_on_crash(target, ERROR):
        copy_objects(source, target)
        report = run_journaled(source, dag, runner, meta=JournalMeta(owner, source.plan),
                               options={**options, "target_checkpoint": target})
        target.drop_reserve()
        target.set_resource_statuses(source.resources)
        target.transition(AVAILABLE if report.ok else ERROR, reason=reason(report))
    return target, report


def copy_objects(source: Checkpoint, target: Checkpoint) -> None:
    """Copy the checkpoint's own data objects, each as the value it is (bytes,
    text or JSON); a plugin's large data lives in its own shared areas, which
    its copy hooks copy."""
    base = source.prefix + "data/"
    for key in source.bank.iter_objects(base):
        dest = target.prefix + "data/" + key[len(base):]
        target.bank.update_object(dest, source.bank.get_object(key))
    dag_key = "dag.json"
    if source.bank.has_object(source.prefix + dag_key):
        target.bank.update_object(target.prefix + dag_key,
                                  source.bank.get_object(source.prefix + dag_key))
