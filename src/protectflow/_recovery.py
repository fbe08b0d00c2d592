"""What an operation's journal is written for, and what resuming it requires.

A journal's ``meta`` names the operation, the fingerprints of the plan and of
the compiled DAG, the version of the distribution behind every protection
plugin the DAG uses, the executor and the parameters. A resumed run must match
all but the executor: otherwise the recorded outputs would belong to another
run, and resuming is refused with what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from protectflow.bank import Checkpoint
from protectflow.bank.journal import BankJournal, JournalRun, read_journal
from protectflow.dag import HookDAG, jsonio
from protectflow.errors import BankError
from protectflow.executors.report import Recorded
from protectflow.plugins.registry import PROTECTIONS

__all__ = ["check_resumable", "completed_hooks", "next_steps", "resume_chain",
           "start_journal"]

#: Operations a journal can be resumed for.
RESUMABLE = ("protect", "restore", "verify", "delete")


def plan_fingerprint(plan_json: Mapping[str, Any]) -> str:
    """A SHA-256 of the plan's canonical JSON (parameters included)."""
    text = json.dumps(plan_json, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def plugin_versions(dag: HookDAG) -> dict[str, str]:
    """Plugin name -> ``distribution version`` of every protection plugin the
    DAG uses (``unknown`` for one not installed through an entry point)."""
    found = {ep.name: ep for ep in entry_points(group=PROTECTIONS)}
    out = {}
    for name in sorted({n.plugin for n in dag.nodes}):
        ep = found.get(name)
        dist = getattr(ep, "dist", None)
        out[name] = f"{dist.name} {dist.version}" if dist is not None else "unknown"
    return out


def start_journal(
    checkpoint: Checkpoint, dag: HookDAG, *, executor: str, owner: str,
    plan_json: Mapping[str, Any], parameters: Mapping[str, Any] | None = None,
    plan_source: str | None = None, resumes: str | None = None,
    redo: Iterable[str] = (),
) -> BankJournal:
    """Create the journal of a run of ``dag`` on ``checkpoint``."""
    meta = {
        "operation": dag.operation, "dag_fingerprint": jsonio.fingerprint(dag),
        "plan_fingerprint": plan_fingerprint(plan_json),
        "plugin_versions": plugin_versions(dag), "executor": executor, "owner": owner,
        "parameters": {k: dict(v) for k, v in (parameters or {}).items()},
        "plan_source": os.path.abspath(plan_source)
        if plan_source and os.path.isfile(plan_source) else None,
        "resumes": resumes,
        # journaled successes this run runs again on purpose (broken windows)
        "redo": sorted(redo),
    }
    return BankJournal.start(checkpoint, meta)


def resume_chain(checkpoint: Checkpoint, *, unfinished: bool = False) -> list[JournalRun]:
    """The newest run and the runs it resumes, oldest first; empty when the
    checkpoint has no journal. ``unfinished``: the checkpoint's status says
    its operation did not finish (it died after its journal's end).

    Raises
    ------
    BankError
        If its newest run ended well.
    """
    runs = {r.run_id: r for r in read_journal(checkpoint)}
    if not runs:
        return []  # died before its journal began: nothing ran
    last = runs[max(runs)]
    if not unfinished and last.end is not None and last.end.get("state") == "succeeded":
        raise BankError(f"nothing to resume: the last operation on checkpoint "
                        f"{checkpoint.id} ({last.meta['operation']}, run {last.run_id}) "
                        "succeeded")
    chain = [last]
    while (prev := chain[-1].meta.get("resumes")) in runs:
        chain.append(runs[prev])
    return chain[::-1]


def check_resumable(first: JournalRun | None, dag: HookDAG, plan_json: Mapping[str, Any], *,
                    checkpoint: Checkpoint) -> None:
    """Refuse to resume when the plan, the plugins or the DAG changed since
    ``first`` run's journal (or, with no journal, the checkpoint) was written.

    Raises
    ------
    BankError
        Naming what changed, and what to do instead.
    """
    if first is None:  # only the checkpoint's record to go by
        first = JournalRun("-", {
            "operation": dag.operation, "dag_fingerprint": checkpoint.dag_fingerprint,
            "plan_fingerprint": plan_fingerprint(checkpoint.plan),
            "plugin_versions": plugin_versions(dag)}, (), None)
    meta, changed = first.meta, []
    if meta["plan_fingerprint"] != plan_fingerprint(plan_json):
        changed.append("the plan differs from the one the journal was written for")
    versions = plugin_versions(dag)
    for name in sorted(set(versions) | set(meta["plugin_versions"])):
        was, now = meta["plugin_versions"].get(name), versions.get(name)
        if was != now:
            changed.append(f"plugin {name!r} was {was or 'not used'}, is now {now or 'not used'}")
    if meta["dag_fingerprint"] != jsonio.fingerprint(dag):
        changed.append(f"the compiled {dag.operation} DAG differs (fingerprint "
                       f"{meta['dag_fingerprint'][:12]} in the journal, "
                       f"{jsonio.fingerprint(dag)[:12]} now: other parameters or plugins?)")
    if changed:
        raise BankError(f"cannot resume the {meta['operation']} of run {first.run_id}: "
                        + "; ".join(changed) + f". Start a new {meta['operation']} instead"
                        + (" (and delete the unfinished checkpoint)"
                           if meta["operation"] == "protect" else ""))


def plan_to_check(plan: Any, meta: Mapping[str, Any],
                  recorded: dict[str, Any]) -> dict[str, Any]:
    """The plan a resumed protect must match: ``plan`` if given (a Plan or a
    path), else the plan file the journal names if it is still readable,
    else the plan saved in the checkpoint."""
    from protectflow.compiler import Plan, load_plan
    from protectflow.errors import PlanError

    if plan is None and meta.get("plan_source") and os.path.isfile(meta["plan_source"]):
        try:
            plan = load_plan(meta["plan_source"])
        except PlanError:
            return recorded  # unreadable now: the saved plan is what ran
    if plan is None:
        return recorded
    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    data: dict[str, Any] = plan.to_json()
    return data


def completed_hooks(chain: list[JournalRun]) -> dict[str, Recorded]:
    """Node id -> its recorded success, over every run of the chain."""
    done: dict[str, Recorded] = {}
    for run in chain:
        for node, entry in run.succeeded().items():
            done[node] = Recorded(entry.get("output"), entry.get("new_resources"))
    return done


def broken_windows(dag: HookDAG, done: Mapping[str, Any], registry: str | None) -> set[str]:
    """The journaled hooks a resume must run again: a resource whose operation
    is ``atomic_prepare`` and whose prepare_begin is journaled but not its
    prepare_finish has its window broken, and its prepare_begin and every
    hook after it run again."""
    from protectflow.plugins import get_registry

    plugins = get_registry(registry)
    succs = dag.successors()
    redo: set[str] = set()
    for node in dag.nodes:
        if node.hook != "prepare_begin" or node.id not in done or node.id in redo:
            continue
        if f"{node.resource.key}/prepare_finish" in done:
            continue
        op = plugins.plugin(node.plugin).get_operation(dag.operation, node.resource)
        if not getattr(op, "atomic_prepare", False):
            continue
        stack = [node.id]
        while stack:
            nid = stack.pop()
            if nid not in redo:
                redo.add(nid)
                stack.extend(succs[nid])
    return redo & set(done)


def next_steps(checkpoint_id: str) -> str:
    """What to do after a failed or interrupted operation."""
    return (f"resume with `protectflow resume {checkpoint_id}` (after fixing the cause), "
            f"or delete with `protectflow delete {checkpoint_id}`")
