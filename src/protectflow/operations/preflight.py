"""The checks an operation runs before it writes anything: the executor
(made now, so a bad name fails early), the limits against the DAG, the
checkpoint's status and lease, the plan's provider, the DAG over a
checkpoint's saved graph (compiled with the provider the plan named when it
was protected, so that a later restore, verify, copy or delete runs the
plugins its protect ran), and the plugins' own checks of every resource
(:func:`check_resources`: sources that are there, commands on PATH, restore
targets that are free), every problem of every resource reported at once.

Each returns what it checked or made and changes none of its arguments.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from protectflow.bank import Checkpoint
from protectflow.bank.catalog.lease import owner_is_dead
from protectflow.compiler import compile_graph
from protectflow.dag import HookDAG
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import BankError, CheckpointBusyError, ExecutorError, PreflightError
from protectflow.executors import Executor, get_executor
from protectflow.plugins.contract import preflight_problems
from protectflow.plugins.providers import Provider, resolve_provider
from protectflow.plugins.registry import configured_spec, get_registry
from protectflow.states import AVAILABLE, DELETING, ERROR, ERROR_DELETING

__all__ = [
    "check_limits",
    "check_resources",
    "checkpoint_dag",
    "make_executor",
    "plan_provider",
    "require_status",
    "resource_problems",
    "select_resources",
    "with_provider_config",
]

#: Run options that make the executor rather than the run.
EXECUTOR_OPTIONS = ("workers", "scheduler", "client")


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


def make_executor(
    executor: str | Executor, options: Mapping[str, Any], dag: HookDAG, *,
    pools: Mapping[str, Any] | None = None, provider: Any = None,
) -> tuple[Executor, dict[str, Any]]:
    """The executor, made now so a bad name fails before anything is
    written, and the options of the run (``pools`` joins them unless they
    name their own; the configuration of the plan's ``provider`` goes on
    their registry), checked against ``dag`` for the same reason.

    The executor's own options (``workers``, ``scheduler``, ``client``) make
    an executor given by name; with an executor object they stay in the run
    options, which refuse them.

    Raises
    ------
    ExecutorError, MissingDependencyError
        As :func:`protectflow.executors.get_executor`, or for a bad limit.
    PluginError
        For a provider that cannot be used.
    """
    run_options = with_provider_config(options, plan_provider(provider, options))
    if pools:
        run_options.setdefault("pools", pools)
    check_limits(dag, run_options.get("limits") or {}, run_options.get("pools"))
    if not isinstance(executor, str):
        return executor, run_options
    made = {k: run_options.pop(k) for k in EXECUTOR_OPTIONS if k in run_options}
    return get_executor(executor, **made), run_options


def plan_provider(provider: Any, options: Mapping[str, Any]) -> Provider:
    """The provider a plan's ``provider`` field names (``None``: the default
    one), checked against the registry the run's options name.

    Raises
    ------
    PluginError
        As :func:`~protectflow.plugins.providers.resolve_provider`.
    """
    return resolve_provider(provider, get_registry(options.get("registry")))


def with_provider_config(options: Mapping[str, Any], provider: Provider) -> dict[str, Any]:
    """The run options with the provider's plugin configuration on their
    registry spec, so that the executors, in this process or another, run
    each configured plugin as ``provider`` configures it."""
    spec = configured_spec(options.get("registry"), provider.config)
    return {**options, "registry": spec} if spec is not None else dict(options)


def checkpoint_dag(
    checkpoint: Checkpoint, operation: str, parameters: Mapping[str, Mapping[str, Any]] | None,
    *, resources: Sequence[str] | None = None, dependencies: bool = True,
) -> HookDAG:
    """The DAG of ``operation`` over the checkpoint's saved resource graph,
    each resource served by the plugin the plan's provider chooses; only
    ``resources`` (keys) when given, with what they depend on unless not
    ``dependencies``.

    Raises
    ------
    CorruptObjectError
        When the checkpoint's record (its saved graph with it) cannot be read.
    PlanError, PluginError
        For bad parameters.
    BankError
        When ``resources`` names one the checkpoint does not hold.
    """
    plan = checkpoint.plan
    graph = checkpoint.resource_graph
    if resources is not None:
        graph = select_resources(checkpoint, resources, dependencies=dependencies)
        # the parameters of the resources left out are not this run's
        names = graph.types() | set(graph.resources)
        parameters = {k: v for k, v in (parameters or {}).items() if k in names}
    return compile_graph(
        graph, operation, parameters=parameters or {},
        plan_name=plan.name, limits=plan.limits, provider=plan.provider,
    )


def select_resources(checkpoint: Checkpoint, keys: Sequence[str], *,
                     dependencies: bool = True) -> ResourceGraph:
    """The part of the checkpoint's graph that ``keys`` name, with what they
    depend on unless not ``dependencies``.

    Raises
    ------
    BankError
        Naming a key the checkpoint does not hold, and close ones.
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
