"""The checks an operation runs before it writes anything: the limits
against the DAG, the checkpoint's status and lease, and the plugins' own
checks of every resource (:func:`check_resources`: sources that are there,
commands on PATH, restore targets that are free), every problem of every
resource reported at once. The executor, the provider and the DAG are made
once per operation by :mod:`~protectflow.operations.prepared`, which runs
the limits' check.

Each changes none of its arguments.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from protectflow.bank import Checkpoint
from protectflow.bank.catalog.lease import owner_is_dead
from protectflow.dag import HookDAG
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import BankError, CheckpointBusyError, ExecutorError, PreflightError
from protectflow.plugins.contract import preflight_problems
from protectflow.plugins.registry import get_registry
from protectflow.states import AVAILABLE, DELETING, ERROR, ERROR_DELETING

__all__ = ["check_limits", "check_resources", "require_status", "resource_problems"]


def check_limits(dag: HookDAG, limits: Mapping[str, int],
                 pools: Mapping[str, Any] | None = None) -> None:
    """Refuse limits that name no resource type (or pool) of ``dag``.

    Raises
    ------
    ExecutorError
        Naming the limit and the known names.
    """
    known = {r.type for r in dag.resources} | set(pools or ())
    for name, value in limits.items():
        if name not in known:
            raise ExecutorError(
                f"bad limit {name}={value}: {name!r} is no resource type or pool of this "
                f"{dag.operation}; known: {', '.join(sorted(known))}"
            )


def select_resources(checkpoint: Checkpoint, keys: Sequence[str], *,
                     dependencies: bool = True) -> ResourceGraph:
    """The part of the checkpoint's graph that ``keys`` name, with what they
    depend on (their children, transitively) unless not ``dependencies``.

    Raises
    ------
    BankError
        Naming a key the checkpoint does not hold, and a close one.
    """
    graph = checkpoint.resource_graph
    unknown = [k for k in keys if k not in graph.resources]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(graph.resources), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else (
            f"; it holds {', '.join(sorted(graph.resources)[:10])}")
        raise BankError(f"checkpoint {checkpoint.id} holds no resource "
                        f"{', '.join(unknown)}{hint}")
    return graph.subgraph(keys, dependencies=dependencies)


def require_status(checkpoint: Checkpoint, operation: str, *, resuming: bool = False) -> None:
    """Refuse ``operation`` on a checkpoint whose status does not allow it, or
    that another operation holds (a resumed run may reclaim a dead owner's).

    Raises
    ------
    BankError
        Naming the status.
    CheckpointBusyError
        Naming the operation that holds the checkpoint.
    """
    status = checkpoint.status
    lease = checkpoint.lease
    # A delete finishes a delete that died: at once when its owner is a
    # process of this host that is gone, else once its lease expired.
    reclaim = operation == "delete" and lease is not None and owner_is_dead(lease.owner)
    allowed = (AVAILABLE, ERROR) if operation == "delete" else (AVAILABLE,)
    if operation == "delete" and (status == ERROR_DELETING or (
            status == DELETING and (lease is None or reclaim))):
        return  # a failed or dead delete may be tried again
    if status not in allowed:
        raise BankError(
            f"cannot {operation} checkpoint {checkpoint.id}: it is {status}"
            + (f" ({checkpoint.record.status_reason})"
               if checkpoint.record.status_reason else "")
            + f"; {operation} needs a checkpoint that is {' or '.join(allowed)}"
        )
    if lease is not None and not (resuming or reclaim):
        raise CheckpointBusyError(f"cannot {operation} checkpoint {checkpoint.id}: it is busy "
                                  f"with {lease.describe()}")


def resource_problems(dag: HookDAG, *, checkpoint: Checkpoint | None = None,
                      registry: str | None = None) -> list[str]:
    """What each resource's plugin says would make ``dag`` fail
    (:meth:`~protectflow.plugins.ProtectionPlugin.preflight`), in resource order.

    ``checkpoint`` is the checkpoint a restore, verify, copy or delete works
    on (None for a protect); ``registry`` as :func:`~protectflow.plugins.get_registry`'s.
    A plugin whose check raises is reported as a problem, not raised.
    """
    plugins = get_registry(registry)
    names = {n.resource.key: n.plugin for n in dag.nodes}
    problems: list[str] = []
    for resource in dag.resources:
        name = names.get(resource.key)
        if name is None:
            continue
        try:
            problems += preflight_problems(
                plugins.plugin(name), dag.operation, resource,
                dag.parameters.get(resource.key, {}), checkpoint=checkpoint)
        except Exception as err:  # one broken check must not hide the others
            problems.append(f"{resource.key}: the {name} plugin's checks failed: {err!r}")
    return problems


def check_resources(dag: HookDAG, *, checkpoint: Checkpoint | None = None,
                    registry: str | None = None) -> None:
    """Refuse ``dag`` when its plugins find problems (:func:`resource_problems`).

    Raises
    ------
    PreflightError
        Listing every problem of every resource, each with its fix.
    """
    problems = resource_problems(dag, checkpoint=checkpoint, registry=registry)
    if problems:
        raise PreflightError(f"the {dag.operation} of {dag.plan or 'the plan'} cannot start; "
                             "nothing was written:", problems)
