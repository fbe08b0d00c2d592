"""A HookDAG as a networkx graph, and its GraphML export, over compiled DAGs."""

from __future__ import annotations

import io
import re
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings

from protectflow.compiler import compile_graph, compile_plan
from protectflow.compiler.graph import from_edges
from protectflow.dag import HookDAG
from protectflow.dag.graphml import to_graphml
from protectflow.dag.model import Resource
from protectflow.errors import GraphExportError
from tests.strategies import Spec, full_registry, hook_dags

#: Text XML 1.0 cannot carry as it is (outside its Char production), or that a
#: reader changes (CR becomes LF): written out from the XML specification, not
#: taken from the exporter.
_NOT_XML_TEXT = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _texts(dag: HookDAG) -> list[str]:
    return [dag.operation, dag.plan, *(e.rule for e in dag.edges),
            *(s for n in dag.nodes
              for s in (n.id, n.hook, n.plugin, n.resource.key, n.resource.name))]


def _read(data: bytes) -> Any:
    return nx.read_graphml(io.BytesIO(data))


@settings(max_examples=80)
@given(hook_dags())
def test_the_networkx_graph_is_the_dag(dag: HookDAG) -> None:
    graph = dag.to_networkx()
    assert isinstance(graph, nx.DiGraph)
    assert list(graph.nodes) == dag.node_ids()
    assert sorted(graph.edges) == sorted((e.source, e.target) for e in dag.edges)
    assert graph.number_of_edges() == len(dag.edges)  # no edge of the DAG collapsed
    assert nx.is_directed_acyclic_graph(graph)
    for n in dag.nodes:
        assert graph.nodes[n.id] == {
            "resource": n.resource.key, "resource_type": n.resource.type,
            "resource_id": n.resource.id, "resource_name": n.resource.name,
            "hook": n.hook, "plugin": n.plugin}
    for e in dag.edges:
        assert graph.edges[e.source, e.target] == {"rule": e.rule}
    assert graph.graph == {"operation": dag.operation, "plan": dag.plan, "pruned": dag.pruned}


@settings(max_examples=80)
@given(hook_dags())
def test_graphml_round_trips_or_names_the_text_it_cannot_hold(dag: HookDAG) -> None:
    unwritable = [t for t in _texts(dag) if _NOT_XML_TEXT.search(t)]
    if unwritable:
        with pytest.raises(GraphExportError) as info:
            to_graphml(dag)
        assert info.value.text in unwritable
        return
    data = to_graphml(dag)
    assert to_graphml(dag) == data  # the same bytes every time
    back, graph = _read(data), dag.to_networkx()
    assert list(back.nodes(data=True)) == list(graph.nodes(data=True))
    assert list(back.edges(data=True)) == list(graph.edges(data=True))
    assert {k: v for k, v in back.graph.items() if not k.endswith("_default")} == graph.graph


def test_a_control_character_is_refused_with_the_value_and_a_way_out() -> None:
    # A plan refuses such an id; a DAG built from a resource graph in Python,
    # or read from a file, may still hold one.
    graph = from_edges([Resource("T", "a\x01b")], [])
    dag = compile_graph(graph, "protect", registry=full_registry(["T"]))
    with pytest.raises(GraphExportError, match="export the DAG as JSON or DOT") as info:
        to_graphml(dag)
    assert "\x01" in info.value.text and "U+0001" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_changing_the_networkx_graph_leaves_the_dag_alone() -> None:
    spec = Spec((Resource("T", "a"), Resource("T", "b")), frozenset({("T#a", "T#b")}))
    dag = compile_plan(spec.to_plan(), registry=full_registry(["T"]))
    graph = dag.to_networkx()
    graph.remove_node("T#a/main")
    graph.nodes["T#b/main"]["hook"] = "changed"
    assert dag.to_networkx().number_of_nodes() == len(dag.nodes) == 8
    assert dag.to_networkx().nodes["T#b/main"]["hook"] == "main"
