"""Building the resource graph: the plan's resources, expanded through the protectables.

Edges go parent -> child ("the parent depends on the child"). A child may have
several parents; a cycle is an error that names the resources on it in order.
The :class:`~protectflow.dag.resource_graph.ResourceGraph` built is pure data
beside the HookDAG (:mod:`protectflow.dag.resource_graph`, re-exported here).
"""

from __future__ import annotations

from typing import Any

from protectflow.compiler.names import resource_problems
from protectflow.dag.graphs import find_cycle
from protectflow.dag.model import Resource
from protectflow.dag.plan import Plan
from protectflow.dag.resource_graph import ResourceGraph, from_edges
from protectflow.errors import PlanError
from protectflow.plugins.registry import Registry

__all__ = ["ResourceGraph", "build_resource_graph", "discover_resources", "find_cycle",
           "from_edges"]


def discover_resources(plan: Plan, registry: Registry, *, context: Any = None) -> list[Resource]:
    """Every resource the plan's ``discover`` entries stand for, as their
    protectables list them (``list_resources(context, parameters)``).

    Raises
    ------
    PlanError
        When a type has no protectable, a protectable fails, or it lists
        something that is not a resource of its type.
    """
    found: list[Resource] = []
    for discovery in plan.discover:
        where = f"plan {plan.source}: discover {discovery.type}"
        protectable = registry.protectable_for(discovery.type)
        if protectable is None:
            known = ", ".join(sorted(registry.protectables)) or "none"
            raise PlanError(f"{where}: no protectable lists resources of that type "
                            f"(protectables: {known})")
        try:
            listed = list(protectable.list_resources(context, discovery.parameters))
        except Exception as err:
            raise PlanError(f"{where}: the protectable failed to list resources: {err}") from err
        for item in listed:
            if not isinstance(item, Resource) or item.type != discovery.type:
                raise PlanError(f"{where}: the protectable listed {item!r}, not a resource "
                                f"of type {discovery.type}")
            _check_found(item, where)
        found.extend(listed)
    return found


def _check_found(resource: Resource, where: str) -> None:
    """Refuse a resource a protectable found that no operation could store
    (the plan's own resources are checked when it is read)."""
    problems = resource_problems(resource)
    if problems:
        raise PlanError(f"{where}: it listed a resource no checkpoint can hold:", problems)


def build_resource_graph(
    plan: Plan, registry: Registry, *, context: Any = None
) -> ResourceGraph:
    """Expand ``plan`` into its resource graph.

    Each resource's dependents come from the plan's ``depends_on`` and from the
    protectable of its type (asked once per resource), recursively.

    Raises
    ------
    CycleError
        When the resources depend on each other in a cycle.
    PlanError
        When a protectable fails.
    """
    _check_plan_resources(plan)
    resources = {pr.resource.key: pr.resource for pr in plan.resources}
    children = {pr.resource.key: set(pr.depends_on) for pr in plan.resources}
    for resource in discover_resources(plan, registry, context=context):
        if resource.key not in resources:  # a resource the plan lists keeps its depends_on
            resources[resource.key] = resource
            children[resource.key] = set()
    if not resources:
        raise PlanError(f"plan {plan.source} has no resources: its discoveries found none")
    _expand_dependents(resources, children, registry, context=context)
    return from_edges(resources.values(),
                      [(parent, child) for parent, cs in children.items() for child in cs])


def _check_plan_resources(plan: Plan) -> None:
    """Refuse a plan whose ``depends_on`` names no resource of it, or whose
    resources no checkpoint can hold."""
    known = {pr.resource.key for pr in plan.resources}
    # parse_plan checks this; a Plan built in Python has not been through it.
    dangling = [
        f"{pr.resource.key} depends on {dep}, which is not a resource of the plan"
        for pr in plan.resources
        for dep in pr.depends_on
        if dep not in known
    ]
    if dangling:
        raise PlanError(f"plan {plan.source} is not valid:", dangling)
    # parse_plan checks these too, with each resource's place in the document.
    unfit = [p for pr in plan.resources for p in resource_problems(pr.resource)]
    if unfit:
        raise PlanError(f"plan {plan.source} is not valid:", unfit)


def _expand_dependents(
    resources: dict[str, Resource],
    children: dict[str, set[str]],
    registry: Registry,
    *,
    context: Any,
) -> None:
    """Add, in place, every dependent the protectables list for ``resources``,
    recursively, asking each protectable once per resource."""
    pending = list(resources.values())
    expanded: set[str] = set()
    while pending:
        resource = pending.pop()
        if resource.key in expanded:
            continue
        expanded.add(resource.key)
        protectable = registry.protectable_for(resource.type)
        if protectable is None:
            continue
        try:
            found = protectable.get_dependent_resources(context, resource)
        except Exception as err:
            raise PlanError(
                f"the protectable for {resource.type} failed to list the dependents of "
                f"{resource.key}: {err}"
            ) from err
        for child in found:
            _check_found(child, f"the protectable for {resource.type}, listing the "
                         f"dependents of {resource.key}")
            children[resource.key].add(child.key)
            if child.key not in resources:
                resources[child.key] = child
                children[child.key] = set()
                pending.append(child)
