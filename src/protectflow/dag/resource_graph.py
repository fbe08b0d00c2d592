"""The resource graph as pure data: resources by key and, for each, the keys
of its children (parent -> child: "the parent depends on the child").

It is checked whenever it is made -- every dependency names a resource, no
resource is listed twice, no cycle -- whether the compiler built it from a
plan (:func:`protectflow.compiler.build_resource_graph`) or it was read back
from a checkpoint (:meth:`ResourceGraph.from_json`, the one reader of the
form :meth:`ResourceGraph.to_json` writes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from protectflow.dag.graphs import find_cycle
from protectflow.dag.model import HookDAG, Resource
from protectflow.errors import CycleError, PlanError

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["ResourceGraph", "from_edges"]


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

    def subgraph(self, keys: Iterable[str], *, dependencies: bool = True) -> ResourceGraph:
        """The resources ``keys`` and, with ``dependencies``, every resource
        they depend on (their children, transitively), with the edges
        between them.

        Raises
        ------
        KeyError
            Naming a key the graph does not hold.
        """
        chosen: set[str] = set()
        todo = list(keys)
        while todo:
            key = todo.pop()
            if key not in self.resources:
                raise KeyError(key)
            if key in chosen:
                continue
            chosen.add(key)
            if dependencies:
                todo.extend(self.children.get(key, ()))
        return ResourceGraph(
            {k: r for k, r in self.resources.items() if k in chosen},
            {k: tuple(c for c in cs if c in chosen) for k, cs in self.children.items()
             if k in chosen})

    def types(self) -> set[str]:
        """The resource types the graph holds."""
        return {r.type for r in self.resources.values()}

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
        """The graph as a checkpoint keeps it: ``{"resources": [...],
        "dependencies": [[parent, child], ...]}``, both sorted."""
        return {
            "resources": [r.to_json() for r in self.resources.values()],
            "dependencies": [list(pair) for pair in self.dependencies()],
        }

    @classmethod
    def from_json(cls, data: object) -> ResourceGraph:
        """The graph :meth:`to_json` wrote (the form checkpoints keep), checked
        as every graph is (a bank is untrusted storage).

        Raises
        ------
        PlanError
            When ``data`` is not of that form, a dependency names no resource
            or a resource is listed twice (a damaged checkpoint record).
        CycleError
            When the dependencies form a cycle.
        """
        try:
            if not isinstance(data, dict):
                raise TypeError(f"it is a {type(data).__name__}")
            resources = [Resource.from_json(r) for r in data["resources"]]
            pairs = [tuple(p) for p in data["dependencies"]]
            if any(len(p) != 2 or not all(isinstance(k, str) for k in p) for p in pairs):
                raise ValueError("a dependency is not a [parent, child] pair")
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise PlanError(
                f"a resource graph must be {{'resources': [{{'type', 'id', ...}}], "
                f"'dependencies': [[parent, child], ...]}}; this one is not ({err!r})"
            ) from err
        return from_edges(resources, pairs)

    @classmethod
    def from_dag(cls, dag: HookDAG) -> ResourceGraph:
        """The resource graph ``dag`` was compiled from (what a checkpoint keeps).

        Raises
        ------
        PlanError, CycleError
            As :func:`from_edges`, for a DAG built by hand that is not checked.
        """
        return from_edges(dag.resources, dag.dependencies)


def from_edges(resources: Iterable[Resource], pairs: Iterable[tuple[str, ...]]) -> ResourceGraph:
    """A checked graph of ``resources`` and ``(parent, child)`` key pairs.

    Raises
    ------
    PlanError
        When a pair names a resource that is not given, or a resource is
        given twice.
    CycleError
        When the pairs form a cycle.
    """
    by_key: dict[str, Resource] = {}
    for resource in sorted(resources, key=lambda r: r.key):
        if resource.key in by_key:
            raise PlanError(f"resource {resource.key} is listed twice")
        by_key[resource.key] = resource
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
