"""The compiler: a pure function of (operation, resource graph, plugins,
parameters) to a :class:`~protectflow.dag.HookDAG`.

One node per (resource, hook) and the six rules of the plugin guide's figure
(A -> B: B waits for A):

=======  ===============================================
green    parent.prepare_begin  -> child.prepare_begin
indigo   r.prepare_begin       -> r.prepare_finish
purple   child.prepare_finish  -> parent.prepare_finish
yellow   r.prepare_finish      -> r.main
red      r.main                -> r.complete
black    child.complete        -> parent.complete
=======  ===============================================

The hook DAG is acyclic exactly when the resource graph is, so only the
(four times smaller) resource graph is checked for cycles.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from protectflow._util import paused_gc
from protectflow.compiler.graph import build_resource_graph
from protectflow.compiler.params import resolve_parameters
from protectflow.dag.model import HOOKS, OPERATIONS, HookDAG, HookEdge, HookNode, node_id
from protectflow.dag.plan import Plan
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import ParameterError, PlanError, PluginError
from protectflow.plugins.contract import get_operation, implemented_hooks
from protectflow.plugins.providers import Provider, resolve_provider
from protectflow.plugins.registry import Registry, get_registry

__all__ = ["compile_graph", "compile_plan"]


def compile_plan(
    plan: Plan,
    operation: str = "protect",
    *,
    registry: Registry | None = None,
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    prune: bool = False,
    context: Any = None,
    provider: Provider | None = None,
) -> HookDAG:
    """Compile ``plan`` for ``operation`` into a validated HookDAG.

    ``parameters`` replaces the plan's own (a restore's parameters, say);
    ``provider`` is the plan's provider already resolved (an operation
    resolves it once), else the plan's ``provider`` field is.

    Raises
    ------
    PlanError
        For an unknown operation, a cycle (:class:`~protectflow.errors.CycleError`)
        or parameters that fail their schemas
        (:class:`~protectflow.errors.ParameterError`).
    PluginError
        When a resource type has no protection plugin.
    """
    registry = registry or get_registry()
    _check_operation(operation)
    with paused_gc():
        graph = build_resource_graph(plan, registry, context=context)
    return compile_graph(
        graph,
        operation,
        registry=registry,
        parameters=plan.parameters if parameters is None else parameters,
        plan_name=plan.name,
        limits=plan.limits,
        prune=prune,
        provider=plan.provider if provider is None else provider,
    )


def compile_graph(
    graph: ResourceGraph,
    operation: str,
    *,
    registry: Registry | None = None,
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    plan_name: str = "",
    limits: Mapping[str, int] | None = None,
    prune: bool = False,
    provider: Provider | str | Mapping[str, Any] | None = None,
) -> HookDAG:
    """Compile an already built resource graph (a checkpoint's, say).

    ``provider`` chooses the plugin of each resource type: a provider, its
    name, its document form (a plan's ``provider`` field), or ``None`` for
    the default provider.

    Raises
    ------
    PlanError, PluginError
        As :func:`compile_plan`.
    """
    registry = registry or get_registry()
    _check_operation(operation)
    plugins, missing = _plugins_by_type(graph, registry, resolve_provider(provider, registry))
    try:
        merged = resolve_parameters(graph, plugins, registry, operation, parameters or {})
    except ParameterError as err:
        if missing is None:
            raise
        # Both stages' problems at once: the types that have a plugin are checked.
        raise PluginError(f"{missing}\n{err}") from err
    if missing is not None:
        raise missing
    with paused_gc():
        nodes, edges = _emit(graph, plugins)
    dag = HookDAG(
        operation=operation,
        plan=plan_name,
        resources=tuple(graph.resources.values()),
        dependencies=tuple(graph.dependencies()),
        nodes=tuple(nodes),
        edges=tuple(edges),
        parameters=merged,
        limits=dict(limits or {}),
    )
    return _prune(dag, registry) if prune else dag


def _check_operation(operation: str) -> None:
    if operation not in OPERATIONS:
        raise PlanError(f"unknown operation {operation!r}; available: {', '.join(OPERATIONS)}")


def _plugins_by_type(graph: ResourceGraph, registry: Registry,
                     provider: Provider) -> tuple[dict[str, str], PluginError | None]:
    """Resource type -> plugin name, as ``provider`` chooses, and the error
    naming every type without a plugin, or with two and no choice (None
    when there is none)."""
    plugins: dict[str, str] = {}
    missing: dict[str, list[str]] = defaultdict(list)
    ambiguous: dict[str, str] = {}
    for key, resource in graph.resources.items():
        if resource.type in plugins or resource.type in ambiguous:
            continue
        try:
            name = provider.plugin_for(resource.type, registry)
        except PluginError as err:
            ambiguous[resource.type] = str(err)
            continue
        if name is None:
            missing[resource.type].append(key)
        else:
            plugins[resource.type] = name
    if missing or ambiguous:
        return plugins, PluginError("\n".join([*(ambiguous[t] for t in sorted(ambiguous)),
                                               *_missing_lines(missing, registry)]))
    return plugins, None


def _missing_lines(missing: Mapping[str, list[str]], registry: Registry) -> list[str]:
    if not missing:
        return []
    known = registry.resource_types()
    lines = []
    for rtype, keys in sorted(missing.items()):
        close = difflib.get_close_matches(rtype, known, n=1)
        lines.append(
            f"no protection plugin handles {rtype} (resources: {', '.join(keys[:5])}"
            f"{', ...' if len(keys) > 5 else ''})"
            + (f"; did you mean {close[0]!r}?" if close else "")
        )
    installed = ", ".join(known) or "none"
    lines[-1] += (f"\n  installed plugins handle: {installed}; install a plugin "
                  "for the type or remove the resources from the plan")
    return lines


def _emit(
    graph: ResourceGraph, plugins: Mapping[str, str]
) -> tuple[list[HookNode], list[HookEdge]]:
    # Emitting in resource order, and children in sorted order, makes the
    # output deterministic without sorting the (much larger) hook graph.
    ids: dict[str, tuple[str, ...]] = {}
    nodes: list[HookNode] = []
    for key, resource in graph.resources.items():
        four = ids[key] = tuple(node_id(key, h) for h in HOOKS)
        plugin = plugins[resource.type]
        nodes.extend(HookNode(i, resource, h, plugin) for i, h in zip(four, HOOKS, strict=True))
    edges: list[HookEdge] = []
    add = edges.append
    for key, kids in graph.children.items():
        begin, finish, main, complete = ids[key]
        add(HookEdge(begin, finish, "indigo"))
        add(HookEdge(finish, main, "yellow"))
        add(HookEdge(main, complete, "red"))
        for child in kids:
            c_begin, c_finish, _, c_complete = ids[child]
            add(HookEdge(begin, c_begin, "green"))
            add(HookEdge(c_finish, finish, "purple"))
            add(HookEdge(c_complete, complete, "black"))
    return nodes, edges


def _prune(dag: HookDAG, registry: Registry) -> HookDAG:
    """Drop the hooks the operation does not implement, keeping every ordering
    between the others: B stays reachable from A exactly when it was."""
    keep: set[str] = set()
    implemented: dict[str, tuple[str, ...]] = {}  # resource key -> its hooks, asked once
    for node in dag.nodes:
        key = node.resource.key
        if key not in implemented:
            op = get_operation(registry.plugin(node.plugin), dag.operation, node.resource)
            implemented[key] = implemented_hooks(op)
        if node.hook in implemented[key]:
            keep.add(node.id)
    preds: dict[str, dict[str, str]] = {n.id: {} for n in dag.nodes}
    succs: dict[str, dict[str, str]] = {n.id: {} for n in dag.nodes}
    for e in dag.edges:
        preds[e.target][e.source] = e.rule
        succs[e.source][e.target] = e.rule
    # Contract each dropped node: link every predecessor to every successor.
    for node in dag.nodes:
        if node.id in keep:
            continue
        ps, ss = preds.pop(node.id), succs.pop(node.id)
        for p in ps:
            del succs[p][node.id]
        for s in ss:
            del preds[s][node.id]
        for p in ps:
            for s in ss:
                if s not in succs[p]:
                    succs[p][s] = preds[s][p] = "implied"
    order = {n.id: i for i, n in enumerate(dag.nodes)}
    edges = [
        HookEdge(src, dst, rule)
        for src in sorted(succs, key=order.__getitem__)
        for dst, rule in sorted(succs[src].items(), key=lambda item: order[item[0]])
    ]
    return HookDAG(
        operation=dag.operation,
        plan=dag.plan,
        resources=dag.resources,
        dependencies=dag.dependencies,
        nodes=tuple(n for n in dag.nodes if n.id in keep),
        edges=tuple(edges),
        parameters=dag.parameters,
        limits=dag.limits,
        pruned=True,
    )
