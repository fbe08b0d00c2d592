"""What resuming an operation from its journal requires.

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
from protectflow.compiler import Plan, load_plan
from protectflow.dag import HookDAG, jsonio
from protectflow.errors import NotResumableError, PlanError
from protectflow.executors.report import Recorded
from protectflow.operations.journal import plan_fingerprint, plugin_versions
from protectflow.plugins import get_registry
from protectflow.plugins.contract import get_operation, operation_settings
from protectflow.states import SUCCEEDED

__all__ = ["broken_windows", "check_resumable", "completed_hooks", "lineage", "plan_to_check"]


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


def check_resumable(first: JournalRun | None, dag: HookDAG, plan: Plan, *,
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
            operation=dag.operation, dag_fingerprint=checkpoint.dag_fingerprint,
            plan_fingerprint=plan_fingerprint(checkpoint.plan),
            plugin_versions=plugin_versions(dag), executor="-", owner=checkpoint.owner,
        ), (), None)
    operation = first.meta.operation
    changed = _changes(first.meta, dag, plan)
    if changed:
        raise NotResumableError(f"cannot resume the {operation} of run {first.run_id}: "
                                + "; ".join(changed) + f". Start a new {operation} instead"
                                + (" (and delete the unfinished checkpoint)"
                                   if operation == "protect" else ""))


def _changes(meta: RunMeta, dag: HookDAG, plan: Plan) -> list[str]:
    """What differs between a journal's ``meta`` and this run, in words."""
    changed = []
    if meta.plan_fingerprint != plan_fingerprint(plan):
        changed.append("the plan differs from the one the journal was written for")
    versions = plugin_versions(dag)
    for name in sorted(set(versions) | set(meta.plugin_versions)):
        was, now = meta.plugin_versions.get(name), versions.get(name)
        if was != now:
            changed.append(f"plugin {name!r} was {was or 'not used'}, is now {now or 'not used'}")
    if meta.dag_fingerprint != jsonio.fingerprint(dag):
        changed.append(f"the compiled {dag.operation} DAG differs (fingerprint "
                       f"{meta.dag_fingerprint[:12]} in the journal, "
                       f"{jsonio.fingerprint(dag)[:12]} now: other parameters or plugins?)")
    return changed


def plan_to_check(plan: Plan | str | os.PathLike[str] | None, meta: RunMeta | None,
                  recorded: Plan) -> Plan:
    """The plan a resumed protect must match: ``plan`` if given (a Plan or a
    path), else the plan file the journal's ``meta`` names if it is still
    readable, else the plan saved in the checkpoint.

    Raises
    ------
    PlanError
        When ``plan``, given as a path, cannot be read.
    """
    source = meta.plan_source if meta is not None else None
    if plan is None and source and os.path.isfile(source):
        try:
            plan = load_plan(source)
        except PlanError:
            return recorded  # unreadable now: the saved plan is what ran
    if plan is None:
        return recorded
    return plan if isinstance(plan, Plan) else load_plan(plan)


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
