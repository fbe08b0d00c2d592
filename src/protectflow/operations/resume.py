"""Resuming an operation from its journal: the whole of it.

A resume follows its checkpoint's **lineage**: the newest journal run and the
runs it resumes in turn, oldest first. Hooks any of them journaled as
succeeded are taken as done, unless a broken ``atomic_prepare`` window makes
them run again. A resumed run must match the journal's meta in all but the
executor: otherwise the recorded outputs would belong to another run, and
resuming is refused with what changed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from protectflow.bank import Checkpoint
from protectflow.bank.catalog.journal import JournalRun, RunMeta, read_journal
from protectflow.compiler import Plan
from protectflow.dag import HookDAG
from protectflow.errors import NotResumableError
from protectflow.executors import Executor
from protectflow.executors.report import Recorded
from protectflow.operations.confirm import (
    confirm_parameters,
    confirm_plan,
    operator_plan,
    plan_differences,
)
from protectflow.operations.journal import JournalMeta, plan_fingerprint
from protectflow.operations.lease import lease_ttl
from protectflow.operations.outcomes import OperationResult
from protectflow.operations.preflight import require_status
from protectflow.operations.prepared import Prepared, RunSettings, prepare_checkpoint
from protectflow.operations.runs import delete_checkpoint, protect_into, run_on_checkpoint
from protectflow.plugins import get_registry
from protectflow.plugins.contract import get_operation, operation_settings
from protectflow.states import (
    COPYING,
    DELETING,
    ERROR,
    ERROR_DELETING,
    PROTECTING,
    SUCCEEDED,
)

__all__ = ["broken_windows", "check_resumable", "completed_hooks", "lineage",
           "resume_checkpoint"]


def resume_checkpoint(checkpoint: Checkpoint, *, executor: str | Executor,
                      plan: Plan | str | os.PathLike[str] | None, owner: str,
                      settings: RunSettings,
                      parameters: Mapping[str, Mapping[str, Any]] | None = None,
                      ) -> OperationResult:
    """Continue the interrupted or failed operation of ``checkpoint`` from its
    journal (see :func:`protectflow.operations.resume`): a protect with the
    operator's ``plan``, a restore or verify with the operator's ``parameters``
    (see :mod:`~protectflow.operations.confirm`).

    Raises
    ------
    NotResumableError
        When there is nothing to resume, the operation cannot be resumed, or
        what the journal ran differs from what this run would run.
    CheckpointBusyError
        When a live operation holds the checkpoint.
    """
    if checkpoint.status in (DELETING, ERROR_DELETING):
        # a delete is finished, not resumed: it is idempotent
        return delete_checkpoint(checkpoint, executor=executor, owner=owner, settings=settings)
    if checkpoint.status == COPYING:
        raise NotResumableError(_COPY_ADVICE.format(id=checkpoint.id))
    runs = lineage(checkpoint, unfinished=checkpoint.status in (PROTECTING, ERROR))
    # No journal: a protect that died early.
    operation = runs[0].meta.operation if runs else "protect"
    if operation in ("restore", "verify"):
        return _resume_on_checkpoint(operation, checkpoint, runs, executor=executor,
                                     owner=owner, settings=settings, given=parameters)
    if operation != "protect" or checkpoint.record.copy_target:
        raise NotResumableError(
            _COPY_ADVICE.format(id=checkpoint.id) if operation == "copy" else
            f"cannot resume the {operation} of checkpoint {checkpoint.id}: only protect, "
            f"restore and verify resume; run the {operation} again")
    return _resume_protect(checkpoint, runs, executor=executor, plan=plan, owner=owner,
                           settings=settings)


_COPY_ADVICE = (
    "cannot resume the copy of checkpoint {id}: a copy starts again rather than resumes. "
    "`protectflow checkpoints gc` resolves the dead copy (at once when its owner was a "
    "process of this host that is gone, else once its lease expired): the source goes back "
    "to available and the unfinished target becomes error; then run the copy of {id} again")


def _resume_on_checkpoint(operation: str, checkpoint: Checkpoint, runs: list[JournalRun], *,
                          executor: str | Executor, owner: str, settings: RunSettings,
                          given: Mapping[str, Mapping[str, Any]] | None) -> OperationResult:
    """Continue the restore or verify of ``checkpoint`` after the journal
    ``runs``, with the parameters the operator ``given``: the journal's."""
    parameters = runs[0].meta.parameters
    require_status(checkpoint, operation, resuming=True)
    confirm_parameters(operation, checkpoint, parameters, given)
    prepared = prepare_checkpoint(checkpoint, operation, parameters=parameters,
                                  executor=executor, settings=settings)
    check_resumable(runs[0], prepared, checkpoint.plan, checkpoint=checkpoint)
    return run_on_checkpoint(operation, checkpoint, prepared.resuming(completed_hooks(runs)),
                             parameters=parameters, owner=owner, resumes=runs[-1].run_id)


def _resume_protect(
    checkpoint: Checkpoint, runs: list[JournalRun], *, executor: str | Executor,
    plan: Plan | str | os.PathLike[str] | None, owner: str, settings: RunSettings,
) -> OperationResult:
    """Continue the protect of ``checkpoint`` after the journal ``runs``."""
    if checkpoint.status not in (PROTECTING, ERROR):
        raise NotResumableError(f"cannot resume the protect of checkpoint {checkpoint.id}: "
                                f"it is {checkpoint.status}, not {PROTECTING} or {ERROR}")
    meta = runs[0].meta if runs else None
    kept = checkpoint.plan
    prepared = prepare_checkpoint(checkpoint, "protect", parameters=kept.parameters,
                                  executor=executor, settings=settings)
    given = operator_plan(plan, meta)
    try:
        check_resumable(runs[0] if runs else None, prepared, given or kept,
                        checkpoint=checkpoint)
    except NotResumableError as err:
        named = plan_differences(checkpoint, prepared, given)
        if not named:
            raise
        raise NotResumableError(f"{err}; the record differs from your plan: "
                                + "; ".join(named)) from err
    confirm_plan(checkpoint, prepared, given)
    journaled = completed_hooks(runs)
    redo = broken_windows(prepared.dag, journaled, prepared.registry)
    prepared = prepared.resuming({k: v for k, v in journaled.items() if k not in redo})
    checkpoint.acquire("protect", owner, ttl=lease_ttl(), reclaim_dead=True)
    try:
        if checkpoint.status == ERROR:
            checkpoint.transition(PROTECTING, reason=f"resumed by {owner}")
    except BaseException:
        checkpoint.release()
        raise
    journal = JournalMeta(owner, kept, plan_source=meta.plan_source if meta else None,
                          resumes=runs[-1].run_id if runs else None, redo=redo)
    return protect_into(checkpoint, prepared, meta=journal)


def lineage(checkpoint: Checkpoint, *, unfinished: bool = False) -> list[JournalRun]:
    """The newest run and the runs it resumes, oldest first; empty when the
    checkpoint has no journal. ``unfinished``: the checkpoint's status says
    its operation did not finish (it died after its journal's end).

    Raises
    ------
    NotResumableError
        If its newest run ended well.
    """
    runs = {r.run_id: r for r in read_journal(checkpoint)}
    if not runs:
        return []  # died before its journal began: nothing ran
    last = runs[max(runs)]
    if not unfinished and last.end is not None and last.end.state == SUCCEEDED:
        raise NotResumableError(f"nothing to resume: the last operation on checkpoint "
                                f"{checkpoint.id} ({last.meta.operation}, run {last.run_id}) "
                                "succeeded")
    runs_back = [last]
    while (prev := runs_back[-1].meta.resumes) in runs:
        runs_back.append(runs[prev])
    return runs_back[::-1]


def check_resumable(first: JournalRun | None, prepared: Prepared, plan: Plan, *,
                    checkpoint: Checkpoint) -> None:
    """Refuse to resume when the plan, the plugins or the DAG changed since
    ``first`` run's journal (or, with no journal, the checkpoint) was written.

    Raises
    ------
    NotResumableError
        Naming what changed, and what to do instead.
    """
    if first is None:  # only the checkpoint's record to go by
        first = JournalRun("-", RunMeta(
            operation=prepared.dag.operation, dag_fingerprint=checkpoint.dag_fingerprint,
            plan_fingerprint=plan_fingerprint(checkpoint.plan),
            plugin_versions=dict(prepared.plugin_versions), executor="-",
            owner=checkpoint.owner,
        ), (), None)
    operation = first.meta.operation
    changed = _changes(first.meta, prepared, plan)
    if changed:
        raise NotResumableError(f"cannot resume the {operation} of run {first.run_id}: "
                                + "; ".join(changed) + f". Start a new {operation} instead"
                                + (" (and delete the unfinished checkpoint)"
                                   if operation == "protect" else ""))


def _changes(meta: RunMeta, prepared: Prepared, plan: Plan) -> list[str]:
    """What differs between a journal's ``meta`` and this run, in words."""
    changed = []
    if meta.plan_fingerprint != plan_fingerprint(plan):
        changed.append("the plan differs from the one the journal was written for")
    versions = prepared.plugin_versions
    for name in sorted(set(versions) | set(meta.plugin_versions)):
        was, now = meta.plugin_versions.get(name), versions.get(name)
        if was != now:
            changed.append(f"plugin {name!r} was {was or 'not used'}, is now {now or 'not used'}")
    if meta.dag_fingerprint != prepared.fingerprint:
        changed.append(f"the compiled {prepared.dag.operation} DAG differs (fingerprint "
                       f"{meta.dag_fingerprint[:12]} in the journal, "
                       f"{prepared.fingerprint[:12]} now: other parameters or plugins?)")
    return changed


def completed_hooks(runs: list[JournalRun]) -> dict[str, Recorded]:
    """Node id -> its recorded success, over every run of a lineage."""
    done: dict[str, Recorded] = {}
    for run in runs:
        for node, entry in run.succeeded().items():
            writes = entry.new_resources
            done[node] = Recorded(entry.output, dict(writes) if isinstance(writes, Mapping)
                                  else None, entry.status_updates)
    return done


def broken_windows(dag: HookDAG, done: Mapping[str, Any], registry: str | None) -> set[str]:
    """The journaled hooks a resume must run again: a resource whose operation
    is ``atomic_prepare`` and whose prepare_begin is journaled but not its
    prepare_finish has its window broken, and its prepare_begin and every
    hook after it run again."""
    plugins = get_registry(registry)
    succs = dag.successors()
    redo: set[str] = set()
    for node in dag.nodes:
        if node.hook != "prepare_begin" or node.id not in done or node.id in redo:
            continue
        if f"{node.resource.key}/prepare_finish" in done:
            continue
        op = get_operation(plugins.plugin(node.plugin), dag.operation, node.resource)
        if not operation_settings(op).atomic_prepare:
            continue
        stack = [node.id]
        while stack:
            nid = stack.pop()
            if nid not in redo:
                redo.add(nid)
                stack.extend(succs[nid])
    return redo & set(done)
