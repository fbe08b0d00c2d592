"""What a resume takes from the operator, never from the bank alone.

A resume continues what a checkpoint's record and journal say was started.
Both are authenticated, but someone who holds the bank's key can seal any
record: left to the bank, a resume would run a freeze command a forged record
names, as the operator, or write a forged unfinished restore into a folder the
bank chose. So the commands and the targets come from the operator's input
(defence in depth, as restic and borg take paths and commands from the command
line, never from the repository):

- a resumed **protect** runs a resource's commands (a plugin's
  ``command_fields``: an application's ``freeze`` and ``thaw``) only when the
  operator's plan -- ``--plan``, or the plan file the protect was started with,
  still on disk -- gives the same; and when that plan is at hand, the
  checkpoint's plan and every resource it lists must be the plan's;
- a resumed **restore** (or verify) runs with the parameters the operator
  gives (``--target``, ``--force``, ``--parameters``), which must be those its
  journal recorded: a target the operator did not give is refused, named.

Each refusal says what differs and how to proceed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from protectflow.bank import Checkpoint
from protectflow.bank.catalog.journal import RunMeta
from protectflow.compiler import Plan, load_plan
from protectflow.dag.model import Resource
from protectflow.errors import NotResumableError, PlanError
from protectflow.operations.journal import plan_fingerprint
from protectflow.operations.prepared import Prepared
from protectflow.plugins.registry import get_registry

__all__ = ["confirm_parameters", "confirm_plan", "operator_plan", "plan_differences"]

_ABSENT = object()


def operator_plan(plan: Plan | str | os.PathLike[str] | None,
                  meta: RunMeta | None) -> Plan | None:
    """The operator's plan for a resumed protect: ``plan`` if given (a Plan or
    a path), else the plan file the journal's ``meta`` names if it is still
    readable there; None when there is neither.

    Raises
    ------
    PlanError
        When ``plan``, given as a path, cannot be read.
    """
    if plan is not None:
        return plan if isinstance(plan, Plan) else load_plan(plan)
    source = meta.plan_source if meta is not None else None
    if source and os.path.isfile(source):
        try:
            return load_plan(source)
        except PlanError:
            return None  # unreadable now: nothing of the operator's to go by
    return None


def confirm_plan(checkpoint: Checkpoint, prepared: Prepared, given: Plan | None) -> None:
    """Refuse to resume the protect of ``checkpoint`` (compiled into
    ``prepared`` from its record) with anything the operator's plan ``given``
    does not say: a plan that differs, a listed resource whose ``extra_info``
    differs, or -- with or without a plan -- commands no plan of the
    operator's gives.

    Raises
    ------
    NotResumableError
        Naming every difference and how to proceed.
    """
    differences = plan_differences(checkpoint, prepared, given)
    listed = {} if given is None else {r.resource.key for r in given.resources}
    commands = _command_fields(prepared)
    unconfirmed = []
    for resource in prepared.dag.resources:
        fields = sorted(f for f in commands.get(resource.key, ()) if f in resource.extra_info)
        if fields and resource.key not in listed:
            unconfirmed.append(f"{resource.key} ({', '.join(fields)})")
    if differences:
        raise NotResumableError(
            f"cannot resume the protect of checkpoint {checkpoint.id}: its record differs from "
            "your plan: " + "; ".join(differences) + ". A resume runs what your plan says, "
            "never what the bank alone says: if the plan changed, start a new protect (and "
            "delete the unfinished checkpoint); if it did not, the record was changed by "
            "someone who holds the bank's key")
    if unconfirmed:
        where = ("your plan does not list them" if given is not None else
                 "no plan of yours is at hand to confirm them (the protect's plan file is "
                 "gone)")
        raise NotResumableError(
            f"cannot resume the protect of checkpoint {checkpoint.id}: its record names "
            f"commands to run for {', '.join(unconfirmed)}, and {where}. A resume runs "
            "commands only from your plan: give the plan the protect was started with "
            f"(`protectflow resume {checkpoint.id} --plan PLAN`), or start a new protect")


def plan_differences(checkpoint: Checkpoint, prepared: Prepared,
                     given: Plan | None) -> list[str]:
    """How the checkpoint's record (its plan, and the resources ``prepared``
    runs on) differs from the operator's plan ``given``, in words; none
    without a plan."""
    if given is None:
        return []
    differences = _plan_differences(checkpoint.plan, given)
    listed = {r.resource.key: r.resource for r in given.resources}
    for resource in prepared.dag.resources:
        mine = listed.get(resource.key)
        if mine is not None:
            differences += [d for d in _info_differences(resource, mine) if d not in differences]
    return differences


def confirm_parameters(operation: str, checkpoint: Checkpoint,
                       recorded: Mapping[str, Mapping[str, Any]] | None,
                       given: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Refuse to resume the ``operation`` (restore, verify) of ``checkpoint``
    with parameters -- its targets above all -- other than those the operator
    ``given``: the journal's ``recorded`` ones are the bank's word only.

    Raises
    ------
    NotResumableError
        Naming every parameter that differs, and the command that resumes.
    """
    was = {k: dict(v) for k, v in (recorded or {}).items()}
    now = {k: dict(v) for k, v in (given or {}).items()}
    if was == now:
        return
    differences = []
    for key in sorted(set(was) | set(now)):
        before, after = was.get(key, {}), now.get(key, {})
        for name in sorted(set(before) | set(after)):
            old, new = before.get(name, _ABSENT), after.get(name, _ABSENT)
            if old != new:
                differences.append(f"{key} {name}: {_shown(old)} in the journal, "
                                   f"{_shown(new)} given")
    targets = sorted({str(p["target"]) for p in was.values() if "target" in p})
    hint = (f" (`protectflow resume {checkpoint.id} --target {targets[0]}`, with --force "
            "if the restore had it)" if len(targets) == 1 else "")
    raise NotResumableError(
        f"cannot resume the {operation} of checkpoint {checkpoint.id}: its journal records "
        "parameters your command does not give: " + "; ".join(differences) + ". A resume "
        "takes its targets and parameters from you, never from the bank alone: give the "
        f"same ones the {operation} was started with to resume it{hint}, or start a new "
        f"{operation}")


def _plan_differences(recorded: Plan, given: Plan) -> list[str]:
    """What differs between the checkpoint's plan and the operator's, in words."""
    if plan_fingerprint(recorded) == plan_fingerprint(given):
        return []
    out = []
    was = {r.resource.key: r.resource for r in recorded.resources}
    now = {r.resource.key: r.resource for r in given.resources}
    for key in sorted(set(was) - set(now)):
        out.append(f"resource {key} is in the record, not in your plan")
    for key in sorted(set(now) - set(was)):
        out.append(f"resource {key} is in your plan, not in the record")
    for key in sorted(set(was) & set(now)):
        out += _info_differences(was[key], now[key])
    for key in sorted(set(recorded.parameters) | set(given.parameters)):
        before, after = recorded.parameters.get(key, {}), given.parameters.get(key, {})
        for name in sorted(set(before) | set(after)):
            old, new = before.get(name, _ABSENT), after.get(name, _ABSENT)
            if old != new:
                out.append(f"parameter {key} {name}: {_shown(old)} in the record, "
                           f"{_shown(new)} in your plan")
    return out or ["the plan (its name, dependencies, discoveries, limits, pools, bank or "
                   "provider) differs from your plan"]


def _info_differences(recorded: Resource, given: Resource) -> list[str]:
    """How the ``extra_info`` of a resource in the record differs from the plan's."""
    was, now = dict(recorded.extra_info), dict(given.extra_info)
    return [f"resource {recorded.key} extra_info {name}: {_shown(was.get(name, _ABSENT))} "
            f"in the record, {_shown(now.get(name, _ABSENT))} in your plan"
            for name in sorted(set(was) | set(now))
            if was.get(name, _ABSENT) != now.get(name, _ABSENT)]


def _command_fields(prepared: Prepared) -> dict[str, tuple[str, ...]]:
    """Resource key -> the ``extra_info`` fields its plugin runs as commands."""
    registry = get_registry(prepared.registry)
    fields: dict[str, tuple[str, ...]] = {}
    for node in prepared.dag.nodes:
        named = tuple(getattr(registry.plugin(node.plugin), "command_fields", ()))
        if named:
            fields[node.resource.key] = named
    return fields


def _shown(value: object) -> str:
    if value is _ABSENT:
        return "absent"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
