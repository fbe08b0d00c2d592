"""The bodies of the operations, once their checks passed: a protect into
the checkpoint it holds, a restore, verify or delete on its checkpoint, a
copy from one bank into another. Each prepares its run once
(:mod:`~protectflow.operations.prepared`) and runs it through
:func:`~protectflow.operations.journal.run_journaled` and settles the
statuses from the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from protectflow.bank import Checkpoint, CheckpointStore, CopiedFrom
from protectflow.executors import Executor, RunReport
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
from protectflow.operations.preflight import require_status
from protectflow.operations.prepared import Prepared, RunSettings, prepare_checkpoint
from protectflow.states import AVAILABLE, COPYING, DELETED, DELETING, ERROR, ERROR_DELETING

__all__ = ["copy_checkpoint", "delete_checkpoint", "protect_into", "restore_or_verify",
           "run_on_checkpoint"]


def protect_into(checkpoint: Checkpoint, prepared: Prepared, *,
                 meta: JournalMeta) -> OperationResult:
    """Run a prepared protect into a checkpoint this process holds (new or resumed).

    Raises
    ------
    OperationInterrupted
        On Ctrl-C or a termination signal outside the run of hooks (a run
        interrupted inside it ends cancelled, in the result).
    """
    dag = prepared.dag
    with naming_interrupts(checkpoint, "protect"), renewing(checkpoint), \
            failing_on_crash(checkpoint, ERROR):
        # The protect's DAG as it ran, for `protectflow report` to draw (its one
        # reader); a resume does not read it: it compiles the DAG again from the
        # record and compares fingerprints with the journal, a file of the
        # bank being no more trustworthy than the record it would check.
        checkpoint.bank.update_object(checkpoint.prefix + "dag.json", prepared.text)
        report = None
        try:
            report = run_journaled(checkpoint, prepared, meta=meta)
        finally:
            # Plugins clean up after a failed or interrupted run (thaw what they froze).
            cleanup = ({} if report is not None and report.ok
                       else on_failure(dag, checkpoint, prepared.registry))
        resources = with_cleanup(statuses(dag, report), cleanup)
        checkpoint.drop_reserve()  # its space is for these last writes
        checkpoint.set_resource_statuses(resources)
        hint = None if report.ok else next_steps(checkpoint.id, checkpoint.bank.url)
        checkpoint.transition(AVAILABLE if report.ok else ERROR, reason=reason(report),
                              next_steps=hint)
    return OperationResult("protect", checkpoint, report, resources)


def restore_or_verify(operation: str, checkpoint: Checkpoint, *, executor: str | Executor,
                      parameters: Mapping[str, Mapping[str, Any]] | None, owner: str,
                      settings: RunSettings, resources: Sequence[str] | None = None,
                      dependencies: bool = True) -> OperationResult:
    """Check the status of ``checkpoint``, prepare a restore or verify of it
    (of ``resources`` and what they depend on, when given) and run it
    (:func:`run_on_checkpoint`)."""
    require_status(checkpoint, operation)
    prepared = prepare_checkpoint(checkpoint, operation, parameters=parameters,
                                  executor=executor, settings=settings, resources=resources,
                                  dependencies=dependencies)
    return run_on_checkpoint(operation, checkpoint, prepared, parameters=parameters,
                             owner=owner)


def run_on_checkpoint(
    operation: str, checkpoint: Checkpoint, prepared: Prepared, *,
    parameters: Mapping[str, Mapping[str, Any]] | None, owner: str,
    resumes: str | None = None,
) -> OperationResult:
    """Run a prepared restore or verify on ``checkpoint``, whose status the
    caller checked; ``resumes``: the journal run it resumes, if it resumes
    (its targets are part-written by itself, so the plugins' checks are not run)."""
    if resumes is None:
        prepared.check_resources(checkpoint)
        if not checkpoint.bank.writable():
            return _run_read_only(operation, checkpoint, prepared)
    meta = JournalMeta(owner, checkpoint.plan, parameters=parameters, resumes=resumes)
    with naming_interrupts(checkpoint, operation), \
            holding(checkpoint, operation, owner, reclaim_dead=resumes is not None):
        report = run_journaled(checkpoint, prepared, meta=meta)
    resources = statuses(prepared.dag, report)
    run = record_run(checkpoint, operation, owner, report, resources)
    return OperationResult(operation, checkpoint, report, resources, run)


def _run_read_only(operation: str, checkpoint: Checkpoint,
                   prepared: Prepared) -> OperationResult:
    """A restore or verify on a bank that cannot be written (a mounted backup
    disk): no lease, no journal, no run record -- it reads, it cannot be
    resumed, and nothing stops a writer that shares the bank (a read-only
    mount has none)."""
    report = prepared.run(checkpoint)
    note = (f"the bank {checkpoint.bank.url} is read-only: the {operation} ran without "
            "taking the checkpoint's lease, keeping a journal or a run record")
    return OperationResult(operation, checkpoint, report, statuses(prepared.dag, report),
                           notes=(note,))


def delete_checkpoint(checkpoint: Checkpoint, *, executor: str | Executor, owner: str,
                      settings: RunSettings) -> OperationResult:
    """Run the delete hooks of ``checkpoint``, then drop its own data."""
    require_status(checkpoint, "delete")
    prepared = prepare_checkpoint(checkpoint, "delete", parameters=None, executor=executor,
                                  settings=settings)
    with naming_interrupts(checkpoint, "delete"), \
            holding(checkpoint, "delete", owner, reclaim_dead=True), \
            failing_on_crash(checkpoint, ERROR_DELETING):
        if checkpoint.status != DELETING:  # else a dead delete's, finished now
            checkpoint.transition(DELETING)
        report = run_journaled(checkpoint, prepared, meta=JournalMeta(owner, checkpoint.plan))
        resources = statuses(prepared.dag, report)
        if report.ok:
            for key in checkpoint.bank.list_objects(checkpoint.prefix + "data/"):
                checkpoint.bank.delete_object(key)
        checkpoint.set_resource_statuses(resources)
        checkpoint.transition(DELETED if report.ok else ERROR_DELETING, reason=reason(report))
    run = record_run(checkpoint, "delete", owner, report, resources)
    return OperationResult("delete", checkpoint, report, resources, run)


def copy_checkpoint(source: Checkpoint, target_store: CheckpointStore, *,
                    executor: str | Executor, owner: str,
                    settings: RunSettings) -> OperationResult:
    """Copy ``source`` into ``target_store``: its own objects, then its copy
    hooks. Whatever happens to the copy, the source ends ``available``."""
    require_status(source, "copy")
    # As in Karbor, copy hooks get the plan's parameters.
    prepared = prepare_checkpoint(source, "copy", parameters=source.plan.parameters,
                                  executor=executor, settings=settings)
    with naming_interrupts(source, "copy"), holding(source, "copy", owner):
        source.transition(COPYING)
        outcome = "copy interrupted"
        try:
            target, report = _copy_to(source, target_store, prepared, owner=owner)
            outcome = (f"copied to {target_store.bank.url}" if report.ok
                       else f"copy failed: {reason(report)}")
        finally:
            # Whatever happened to the copy, the source is as good as before.
            source.transition(AVAILABLE, reason=outcome)
    resources = statuses(prepared.dag, report)
    run = record_run(source, "copy", owner, report, resources)
    return OperationResult("copy", source, report, resources, run, target)


def _copy_to(source: Checkpoint, target_store: CheckpointStore, prepared: Prepared, *,
             owner: str) -> tuple[Checkpoint, RunReport]:
    """Create the copy in ``target_store`` and fill it; it ends ``available``
    or ``error``."""
    target = target_store.create(
        source.plan, source.resource_graph, source.dag_fingerprint, owner,
        copied_from=CopiedFrom(source.bank.url, source.id), lease_ttl=lease_ttl(),
        tags=source.tags,
    )
    with renewing(target), failing_on_crash(target, ERROR):
        copy_objects(source, target)
        report = run_journaled(source, prepared, meta=JournalMeta(owner, source.plan),
                               target_checkpoint=target)
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
