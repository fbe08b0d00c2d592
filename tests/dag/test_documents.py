"""The plan and the resource graph as a checkpoint keeps them: what
``to_json`` writes, ``from_json`` reads back the same, and anything else --
a damaged or hostile document -- is refused as a PlanError, never taken in
or crashed on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings

from protectflow.compiler import compile_graph
from protectflow.dag import Plan, Resource, ResourceGraph
from protectflow.dag.resource_graph import from_edges
from protectflow.errors import CycleError, PlanError
from tests.strategies import Spec, cyclic_specs, mutated, plan_dicts, plans, specs


def _graph(spec: Spec) -> ResourceGraph:
    return from_edges(spec.resources, spec.edges)


@given(plans())
def test_a_plan_reads_back_as_written(plan: Plan) -> None:
    data = json.loads(json.dumps(plan.to_json()))  # as the bank gives it back
    back = Plan.from_json(data)
    assert back == plan and back.to_json() == plan.to_json()


@given(specs())
def test_a_resource_graph_reads_back_as_written(spec: Spec) -> None:
    graph = _graph(spec)
    back = ResourceGraph.from_json(json.loads(json.dumps(graph.to_json())))
    assert back == graph and back.to_json() == graph.to_json()
    assert [r.name for r in back.resources.values()] == [r.name for r in graph.resources.values()]


@given(cyclic_specs(min_cycle=1))
def test_a_resource_graph_with_a_cycle_is_refused_when_read(spec: Spec) -> None:
    data = {"resources": [r.to_json() for r in spec.resources],
            "dependencies": [list(pair) for pair in sorted(spec.edges)]}
    with pytest.raises(CycleError):
        ResourceGraph.from_json(data)


@settings(max_examples=200)
@given(mutated(plan_dicts()))
def test_a_damaged_plan_is_refused_as_a_plan_error_or_read(data: Any) -> None:
    try:
        plan = Plan.from_json(data)
    except PlanError:
        return
    assert Plan.from_json(plan.to_json()) == plan


@settings(max_examples=200)
@given(mutated(specs().map(lambda s: _graph(s).to_json())))
def test_a_damaged_resource_graph_is_refused_as_a_plan_error_or_read(data: Any) -> None:
    try:
        graph = ResourceGraph.from_json(data)
    except PlanError:
        return
    assert ResourceGraph.from_json(graph.to_json()) == graph


@pytest.mark.parametrize(("data", "why"), [
    ({"resources": []}, "'name' is not a str"),
    ({"name": "p"}, "'resources' is not a list"),
    ({"name": "p", "resources": [{"type": "T"}]}, r"resources\[0\]: 'id' is not a str"),
    ({"name": "p", "resources": [{"type": "T", "id": "i", "depends_on": [3]}]},
     "'depends_on' is not a list of strings"),
    ({"name": "p", "resources": [], "limits": {"T": "2"}}, "'limits' does not map"),
    ({"name": "p", "resources": [], "provider": 3}, "'provider' is neither"),
    ({"name": "p", "resources": [{"discover": {"parameters": {}}}]},
     r"resources\[0\]: 'type' is not a str"),
])
def test_a_stored_plan_says_which_field_is_wrong(data: dict[str, Any], why: str) -> None:
    with pytest.raises(PlanError, match=why):
        Plan.from_json(data, source="kept in checkpoint c1")


@pytest.mark.parametrize(("data", "why"), [
    ({"resources": [{"type": "T", "id": "a"}], "dependencies": [["T#a", "T#b"]]},
     "dependency T#a -> T#b names T#b, which is not a resource"),
    ({"resources": [{"type": "T", "id": "a"}, {"type": "T", "id": "a"}], "dependencies": []},
     "resource T#a is listed twice"),
    ({"resources": [{"type": "T", "id": 1}], "dependencies": []}, "TypeError"),
    ({"resources": [{"id": "a"}], "dependencies": []}, r"KeyError\('type'\)"),
    ({"resources": [], "dependencies": [["a"]]}, "not a \\[parent, child\\] pair"),
    ([], "a resource graph must be"),
])
def test_a_stored_resource_graph_says_what_is_wrong(data: Any, why: str) -> None:
    with pytest.raises(PlanError, match=why):
        ResourceGraph.from_json(data)


def test_the_graph_a_dag_was_compiled_from_is_the_graph_kept() -> None:
    graph = from_edges([Resource("OS::Nova::Server", "web"), Resource("OS::Cinder::Volume", "v")],
                       [("OS::Nova::Server#web", "OS::Cinder::Volume#v")])
    dag = compile_graph(graph, "protect")
    assert ResourceGraph.from_dag(dag) == graph
