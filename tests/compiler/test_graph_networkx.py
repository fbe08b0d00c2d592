"""A resource graph as a networkx graph, and its GraphML export."""

from __future__ import annotations

import io

import networkx as nx
from hypothesis import given, settings

from protectflow.compiler import build_resource_graph
from protectflow.compiler.graph import from_edges
from protectflow.dag.graphml import to_graphml
from protectflow.dag.model import Resource
from protectflow.plugins.registry import Registry
from tests.strategies import Spec, specs


@settings(max_examples=80)
@given(specs(max_size=12))
def test_the_networkx_graph_is_the_resource_graph(spec: Spec) -> None:
    graph = build_resource_graph(spec.to_plan(), Registry({})).to_networkx()
    assert sorted(graph.nodes) == sorted(spec.keys)
    assert set(graph.edges) == set(spec.edges) and graph.number_of_edges() == len(spec.edges)
    assert nx.is_directed_acyclic_graph(graph)
    for r in spec.resources:
        assert graph.nodes[r.key] == {"type": r.type, "id": r.id, "name": r.name}
    # "the parent depends on the child": roots are the nodes nothing points to
    has_parent = {child for _, child in spec.edges}
    assert sorted(n for n in graph if graph.in_degree(n) == 0) == sorted(
        k for k in spec.keys if k not in has_parent)


def test_graphml_round_trips() -> None:
    resources = [Resource("OS::Nova::Server", "web-1", "web <1> & \"front\""),
                 Resource("OS::Cinder::Volume", "v", ""), Resource("OS::Glance::Image", "é 名")]
    graph = from_edges(resources, [("OS::Nova::Server#web-1", "OS::Cinder::Volume#v"),
                                   ("OS::Nova::Server#web-1", "OS::Glance::Image#é 名")])
    back = nx.read_graphml(io.BytesIO(to_graphml(graph)))
    expected = graph.to_networkx()
    assert list(back.nodes(data=True)) == list(expected.nodes(data=True))
    assert list(back.edges(data=True)) == list(expected.edges(data=True))
