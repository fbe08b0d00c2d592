"""The resource graph: the plan's resources, expanded through the protectables.

Edges go parent -> child ("the parent depends on the child"). A child may have
several parents; a cycle is an error that names the resources on it in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from protectflow.compiler.names import resource_problems
from protectflow.compiler.plan import Plan
from protectflow.dag.graphs import find_cycle
from protectflow.dag.model import Resource
from protectflow.errors import CycleError, PlanError
from protectflow.plugins.registry import Registry

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["ResourceGraph", "build_resource_graph", "discover_resources", "find_cycle"]


@attrs.frozen
class ResourceGraph:
    """Resources by key (sorted) and, for each, the sorted keys of its children."""

    resources: dict[str, Resource] = attrs.field(hash=False)
    children: dict[str, tuple[str, ...]] = attrs.field(hash=False)

    def roots(self) -> list[str]:
        """The resources no other resource depends on, sorted."""
        has_parent = {c for cs in self.children.values() for c in cs}
        return [k for k in self.resources if k not in has_parent]

    def dependencies(self) -> list[tuple[str, str]]:
        """Every ``(parent, child)`` pair, sorted."""
        return [(p, c) for p, cs in self.children.items() for c in cs]

    def to_networkx(self) -> nx.DiGraph:
        """The graph as a :class:`networkx.DiGraph`: parent -> child edges.

        Nodes are the resources' ``TYPE#ID`` keys, sorted, with the attributes
        ``type``, ``id`` and ``name`` (``extra_info`` stays in
        :attr:`resources`: GraphML has no type for a dict), so the graph
        writes to GraphML as it is (:mod:`protectflow.dag.graphml`).

        Returns
        -------
        networkx.DiGraph
            A new graph; changing it leaves this one as it is.
        """
        # networkx is imported here, not at the top, so that `import protectflow`
        # does not pay for it.
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from((key, {"type": r.type, "id": r.id, "name": r.name})
                             for key, r in self.resources.items())
        graph.add_edges_from(self.dependencies())
        return graph

    def to_json(self) -> dict[str, Any]:
        return {
            "resources": [r.to_json() for r in self.resources.values()],
            "dependencies": [list(pair) for pair in self.dependencies()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResourceGraph:
        """The inverse of :meth:`to_json` (the form checkpoints keep).

        Raises
        ------
        PlanError
            When ``data`` is not of that form (a damaged checkpoint record).
        """
        try:
            resources = [
                Resource(r["type"], r["id"], r.get("name", ""), r.get("extra_info"))
                for r in data["resources"]
            ]
            pairs = [tuple(p) for p in data["dependencies"]]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("a dependency is not a [parent, child] pair")
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise PlanError(
                f"a resource graph must be {{'resources': [{{'type', 'id', ...}}], "
                f"'dependencies': [[parent, child], ...]}}; this one is not ({err!r})"
            ) from err
        return from_edges(resources, pairs)


def from_edges(resources: Iterable[Resource], pairs: Iterable[tuple[str, ...]]) -> ResourceGraph:
    """A checked graph of ``resources`` and ``(parent, child)`` key pairs.

    Raises
    ------
    PlanError
        When a pair names a resource that is not given.
    CycleError
        When the pairs form a cycle.
    """
    by_key = {r.key: r for r in sorted(resources, key=lambda r: r.key)}
    children: dict[str, set[str]] = {k: set() for k in by_key}
    for parent, child in pairs:
        if parent not in by_key or child not in by_key:
            missing = parent if parent not in by_key else child
            raise PlanError(
                f"dependency {parent} -> {child} names {missing}, which is not a resource"
            )
        children[parent].add(child)
    graph = ResourceGraph(by_key, {k: tuple(sorted(cs)) for k, cs in children.items()})
    cycle = find_cycle(graph.children)
    if cycle:
        raise CycleError(cycle)
    return graph


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
    resources: dict[str, Resource] = {}
    children: dict[str, set[str]] = {}
    pending: list[Resource] = []
    for pr in plan.resources:
        resources[pr.resource.key] = pr.resource
        children[pr.resource.key] = set(pr.depends_on)
        pending.append(pr.resource)
    # parse_plan checks this; a Plan built in Python has not been through it.
    dangling = [
        f"{pr.resource.key} depends on {dep}, which is not a resource of the plan"
        for pr in plan.resources
        for dep in pr.depends_on
        if dep not in resources
    ]
    if dangling:
        raise PlanError(f"plan {plan.source} is not valid:", dangling)
    # parse_plan checks these too, with each resource's place in the document.
    unfit = [p for pr in plan.resources for p in resource_problems(pr.resource)]
    if unfit:
        raise PlanError(f"plan {plan.source} is not valid:", unfit)
    for resource in discover_resources(plan, registry, context=context):
        if resource.key not in resources:  # a resource the plan lists keeps its depends_on
            resources[resource.key] = resource
            children[resource.key] = set()
            pending.append(resource)
    if not resources:
        raise PlanError(f"plan {plan.source} has no resources: its discoveries found none")
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
    ordered = sorted(resources.values(), key=lambda r: r.key)
    graph = ResourceGraph(
        {r.key: r for r in ordered},
        {r.key: tuple(sorted(children[r.key])) for r in ordered},
    )
    cycle = find_cycle(graph.children)
    if cycle:
        raise CycleError(cycle)
    return graph
