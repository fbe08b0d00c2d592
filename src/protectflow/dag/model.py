"""The HookDAG: pure, immutable data between the compiler and the executors.

Nodes name their plugin and hook, never a Python callable, so a DAG can be
written to JSON, read back, diffed, drawn and shipped to another process.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["HOOKS", "OPERATIONS", "RULES", "HookDAG", "HookEdge", "HookNode", "Resource"]

#: The four hooks of an Operation, in the order one resource runs them.
HOOKS = ("prepare_begin", "prepare_finish", "main", "complete")

#: The five operations a protection plugin implements.
OPERATIONS = ("protect", "restore", "verify", "copy", "delete")

#: Edge rules, named after the colours of the plugin guide's figure (A -> B:
#: B waits for A); ``implied`` edges stand for a path through pruned hooks.
RULES = ("green", "indigo", "purple", "yellow", "red", "black", "implied")


def _frozen_dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value) if value else {}


@attrs.frozen
class Resource:
    """A resource to protect. Identity is ``(type, id)``: ``name`` and
    ``extra_info`` are carried along but take no part in equality."""

    type: str
    id: str
    name: str = attrs.field(default="", eq=False)
    extra_info: dict[str, Any] = attrs.field(
        factory=dict, converter=_frozen_dict, eq=False, repr=False
    )

    @property
    def key(self) -> str:
        """``TYPE#ID``, the form plans and DAG files use to name a resource."""
        return f"{self.type}#{self.id}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "id": self.id, "name": self.name}
        if self.extra_info:
            data["extra_info"] = self.extra_info
        return data

    @classmethod
    def from_json(cls, data: object) -> Resource:
        """The resource :meth:`to_json` wrote.

        Raises
        ------
        KeyError
            When ``type`` or ``id`` is missing.
        TypeError
            When ``data`` is not a JSON object, or a field is of the wrong
            type (``type``, ``id`` and ``name`` are strings, ``extra_info``
            an object).
        """
        if not isinstance(data, dict):
            raise TypeError(f"a resource is a JSON object, not a {type(data).__name__}")
        kind, rid = data["type"], data["id"]
        name, extra = data.get("name", ""), data.get("extra_info")
        if not (isinstance(kind, str) and isinstance(rid, str) and isinstance(name, str)
                and isinstance(extra, (dict, type(None)))):
            raise TypeError(f"a resource's type, id and name are strings and its extra_info "
                            f"a JSON object: {data!r:.200}")
        return cls(kind, rid, name, extra)


@attrs.frozen
class HookNode:
    """One hook of one resource, run by the plugin registered as ``plugin``."""

    id: str
    resource: Resource
    hook: str
    plugin: str


class HookEdge(NamedTuple):
    """``target`` waits for ``source``; ``rule`` is the colour that made it.

    A named tuple rather than an attrs class: a 100,000-resource DAG has
    800,000 edges, and a tuple is built three times as fast.
    """

    source: str
    target: str
    rule: str


@attrs.frozen
class HookDAG:
    """The compiled hook DAG of one operation over one resource graph.

    ``resources`` and ``nodes`` are sorted by resource key and hook order, and
    ``dependencies`` holds the resource graph's ``(parent, child)`` key pairs,
    so that a DAG alone is enough to run, resume or restore from.
    """

    operation: str
    plan: str
    resources: tuple[Resource, ...]
    dependencies: tuple[tuple[str, str], ...]
    nodes: tuple[HookNode, ...]
    edges: tuple[HookEdge, ...]
    parameters: dict[str, dict[str, Any]] = attrs.field(factory=dict, hash=False)
    limits: dict[str, int] = attrs.field(factory=dict, hash=False)
    pruned: bool = False

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[HookNode]:
        return iter(self.nodes)

    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def roots(self) -> list[str]:
        """Keys of the resources no other resource depends on, sorted."""
        children = {child for _, child in self.dependencies}
        return [r.key for r in self.resources if r.key not in children]

    def predecessors(self) -> dict[str, list[str]]:
        """Node id -> the ids of the nodes it waits for (every node present)."""
        preds: dict[str, list[str]] = {n.id: [] for n in self.nodes}
        for e in self.edges:
            preds[e.target].append(e.source)
        return preds

    def successors(self) -> dict[str, list[str]]:
        """Node id -> the ids of the nodes that wait for it (every node present)."""
        succs: dict[str, list[str]] = {n.id: [] for n in self.nodes}
        for e in self.edges:
            succs[e.source].append(e.target)
        return succs

    def to_networkx(self) -> nx.DiGraph:
        """The DAG as a :class:`networkx.DiGraph`, for analysing a plan's hooks.

        Nodes are the node ids, in the DAG's order, with the attributes
        ``resource`` (its ``TYPE#ID`` key), ``resource_type``, ``resource_id``,
        ``resource_name``, ``hook`` and ``plugin``; edges carry their ``rule``
        (the colour of the guide's figure); the graph carries ``operation``,
        ``plan`` and ``pruned``. Every attribute is a plain string (or bool),
        so the graph writes to GraphML as it is (:mod:`protectflow.dag.graphml`).

        Returns
        -------
        networkx.DiGraph
            A new graph; changing it leaves the DAG as it is.
        """
        # networkx is imported here, not at the top, so that `import protectflow`
        # (and every executor worker) does not pay for it.
        import networkx as nx

        graph = nx.DiGraph(operation=self.operation, plan=self.plan, pruned=self.pruned)
        graph.add_nodes_from(
            (n.id, {"resource": n.resource.key, "resource_type": n.resource.type,
                    "resource_id": n.resource.id, "resource_name": n.resource.name,
                    "hook": n.hook, "plugin": n.plugin})
            for n in self.nodes)
        graph.add_edges_from((e.source, e.target, {"rule": e.rule}) for e in self.edges)
        return graph


def node_id(resource_key: str, hook: str) -> str:
    """The id of the node running ``hook`` of the resource ``resource_key``."""
    return f"{resource_key}/{hook}"
