"""Properties of the compiler over random resource graphs and plan documents.

The expected edges are computed here from the drawn resource graph alone, so
the test does not share the compiler's reading of the six rules.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import jsonschema
import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protectflow.compiler import compile_plan, parse_plan
from protectflow.compiler import plan as plan_module
from protectflow.compiler.graph import from_edges
from protectflow.dag import HOOKS, OPERATIONS, HookDAG
from protectflow.errors import CycleError
from protectflow.plugins.registry import Registry
from tests.scripts import ROOT
from tests.strategies import (
    Spec,
    cyclic_specs,
    full_registry,
    mutated,
    plan_dicts,
    registry_plugins,
    set_path,
    specs,
)


def digraph(dag: HookDAG) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(n.id for n in dag.nodes)
    g.add_edges_from((e.source, e.target) for e in dag.edges)
    return g


def expected_edges(spec: Spec, node: dict[tuple[str, str], str]) -> set[tuple[str, str, str]]:
    """The six rules of the guide's figure, read straight off the resource graph
    (A -> B: B waits for A). ``node`` maps (resource key, hook) to a node id."""
    out = set()
    for r in spec.keys:
        out.add((node[r, "prepare_begin"], node[r, "prepare_finish"], "indigo"))
        out.add((node[r, "prepare_finish"], node[r, "main"], "yellow"))
        out.add((node[r, "main"], node[r, "complete"], "red"))
    for parent, child in spec.edges:
        out.add((node[parent, "prepare_begin"], node[child, "prepare_begin"], "green"))
        out.add((node[child, "prepare_finish"], node[parent, "prepare_finish"], "purple"))
        out.add((node[child, "complete"], node[parent, "complete"], "black"))
    return out


@settings(max_examples=60)
@given(specs(max_size=12))
def test_compiled_dag_has_four_nodes_per_resource_and_exactly_the_six_rules(spec: Spec) -> None:
    registry = full_registry(spec.types)
    for operation in OPERATIONS:
        dag = compile_plan(spec.to_plan(), operation, registry=registry)
        assert dag.operation == operation
        # One set of four nodes per resource, shared children included.
        node = {(n.resource.key, n.hook): n.id for n in dag.nodes}
        assert len(node) == len(dag.nodes) == 4 * len(spec.resources)
        assert set(node) == {(k, h) for k in spec.keys for h in HOOKS}
        assert len({n.id for n in dag.nodes}) == len(dag.nodes)
        assert {n.plugin for n in dag.nodes} == {"every"}
        # Every edge the rules demand, and no other, each once.
        assert len(dag.edges) == len(set(dag.edges))
        assert set(dag.edges) == expected_edges(spec, node)
        assert nx.is_directed_acyclic_graph(digraph(dag))
        assert sorted(dag.dependencies) == sorted(spec.edges)
        has_parent = {c for _, c in spec.edges}
        assert dag.roots() == sorted(k for k in spec.keys if k not in has_parent)


@settings(max_examples=60)
@given(st.data())
def test_pruning_keeps_reachability_among_the_remaining_hooks(data: st.DataObject) -> None:
    spec = data.draw(specs(max_size=10), label="spec")
    operation = data.draw(st.sampled_from(OPERATIONS), label="operation")
    plugins = data.draw(registry_plugins(spec.types, [operation]), label="plugins")
    registry = Registry(protections=plugins, protectables=[])
    full = compile_plan(spec.to_plan(), operation, registry=registry)
    pruned = compile_plan(spec.to_plan(), operation, registry=registry, prune=True)

    implemented = {
        name: set(plugin.get_operation(operation, None).__class__.__dict__) for name, plugin
        in plugins.items()
    }
    kept = {n.id for n in full.nodes if f"on_{n.hook}" in implemented[n.plugin]}
    assert pruned.pruned and not full.pruned
    assert {n.id for n in pruned.nodes} == kept
    assert [n for n in full.nodes if n.id in kept] == list(pruned.nodes)  # order kept

    g_full, g_pruned = digraph(full), digraph(pruned)
    assert nx.is_directed_acyclic_graph(g_pruned)
    for a in kept:
        assert nx.descendants(g_full, a) & kept == nx.descendants(g_pruned, a), a
    # An edge keeps its colour when it was an edge before; otherwise it is implied.
    rules = {(e.source, e.target): e.rule for e in full.edges}
    for e in pruned.edges:
        assert e.rule == rules.get((e.source, e.target), "implied")
    assert len(pruned.edges) == len(set(pruned.edges))


@settings(max_examples=300)
@given(mutated(plan_dicts(max_size=4)))
def test_fast_plan_check_never_accepts_what_the_schema_rejects(doc: object) -> None:
    schema_ok = jsonschema.Draft202012Validator(plan_module.plan_schema()).is_valid(doc)
    if plan_module._plainly_valid(doc):
        assert schema_ok, doc


_PLAN = {"name": "p", "resources": [
    {"type": "T", "id": "a", "name": "", "extra_info": {}, "depends_on": ["T#b"]},
    {"type": "T", "id": "b"},
]}

# Spots where a fast check is easy to get wrong, tried every run on top of the
# random mutations above.
_PLAN_CASES = [
    ("resources.0.id", ""), ("resources.0.id", 1), ("resources.0.type", "T x"),
    ("resources.0.type", "T#"), ("resources.0.type", "T\n"), ("resources.0.type", ""),
    ("resources.0.name", None), ("resources.0.extra_info", []),
    ("resources.0.depends_on", "T#b"), ("resources.0.depends_on.0", "b"),
    ("resources.0.depends_on.0", "T#"), ("resources.0.depends_on.0", ["T#b"]),
    ("resources.0.nmae", "x"), ("resources.1.type", "-"), ("resources.1", "T#b"),
    ("resources", []), ("name", ""), ("name", "-"), ("limits", {"T": 0}),
    ("limits", {"T": True}), ("parameters", {"T": []}), ("pools", {"p": "T"}),
    ("bank", ""), ("description", None), ("extra", 1),
]


@pytest.mark.parametrize(("path", "value"), _PLAN_CASES)
def test_fast_plan_check_on_known_tricky_documents(path: str, value: Any) -> None:
    doc = set_path(copy.deepcopy(_PLAN), path, value)
    assert not jsonschema.Draft202012Validator(plan_module.plan_schema()).is_valid(doc)
    assert not plan_module._plainly_valid(doc)


@settings(max_examples=30)
@given(plan_dicts(max_size=6))
def test_valid_plan_documents_pass_the_fast_check_and_parse(doc: dict[str, object]) -> None:
    # The other half: the fast path is actually taken for ordinary plans.
    assert plan_module._plainly_valid(doc)
    plan = parse_plan(json.dumps(doc), source="p.json")
    assert plan.to_json()["resources"] == doc["resources"]


@settings(max_examples=60)
@given(cyclic_specs(min_cycle=1))
def test_a_reported_cycle_is_a_real_cycle_of_the_input(spec: Spec) -> None:
    with pytest.raises(CycleError) as info:
        compile_plan(spec.to_plan(), registry=full_registry(spec.types))
    _check_cycle(info.value, spec)
    with pytest.raises(CycleError) as again:
        from_edges(spec.resources, spec.edges)
    assert again.value.cycle == info.value.cycle  # deterministic, whichever the entry


@settings(max_examples=30)
@given(cyclic_specs(min_cycle=2))
def test_a_plan_documents_cycle_is_reported_as_a_real_cycle(spec: Spec) -> None:
    with pytest.raises(CycleError) as info:
        compile_plan(
            parse_plan(json.dumps(spec.to_plan_dict()), source="p.json"),
            registry=full_registry(spec.types),
        )
    _check_cycle(info.value, spec)


def _check_cycle(err: CycleError, spec: Spec) -> None:
    cycle = err.cycle
    assert len(cycle) >= 2 and cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1  # a simple cycle
    assert cycle[0] == min(cycle)  # rotated to its smallest key
    for parent, child in itertools.pairwise(cycle):
        assert (parent, child) in spec.edges
    assert str(err).startswith("cycle: " + " -> ".join(cycle) + "\n")


def test_cycle_message_format() -> None:
    # The search meets the cycle at T#d (from T#a, off the cycle); the report
    # starts at its smallest key all the same.
    text = textwrap.dedent(
        """
        name: loop
        resources:
          - {type: T, id: a, depends_on: ["T#d"]}
          - {type: T, id: b, depends_on: ["T#d"]}
          - {type: T, id: c, depends_on: ["T#b"]}
          - {type: T, id: d, depends_on: ["T#c"]}
        """
    )
    with pytest.raises(CycleError) as info:
        compile_plan(parse_plan(text), registry=full_registry(["T"]))
    assert info.value.cycle == ["T#b", "T#d", "T#c", "T#b"]
    assert str(info.value) == (
        "cycle: T#b -> T#d -> T#c -> T#b\n"
        "  a resource graph must be acyclic: remove one of these dependencies"
    )
    assert isinstance(info.value, ValueError)  # callers can catch the builtin


# Run with tools/ on its PYTHONPATH, for gen_plan.
_HASHSEED_SCRIPT = """
import sys
from gen_plan import generate
from protectflow.compiler import compile_plan, parse_plan
from protectflow.dag import dot, jsonio
from protectflow.dag.model import Resource
from protectflow.plugins.registry import Registry
from protectflow.plugins.builtin.sim import SimProtectionPlugin, ServerProtectable
import json

class Discovering(ServerProtectable):
    # Dependents returned in set order, which changes with the hash seed.
    def get_dependent_resources(self, context, parent):
        return list({Resource("OS::Cinder::Volume", f"{parent.id}-d{i}") for i in range(5)})

plan = parse_plan(json.dumps(generate(150, 3)), source="gen.json")
registry = Registry({"sim": SimProtectionPlugin()}, [Discovering()])
for prune in (False, True):
    dag = compile_plan(plan, "protect", registry=registry, prune=prune)
    sys.stdout.write(jsonio.dumps(dag))
    sys.stdout.write(dot.to_dot(dag))
"""


def test_output_is_identical_under_two_hash_seeds() -> None:
    outputs = []
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT / "tools")}
        done = subprocess.run(
            [sys.executable, "-c", _HASHSEED_SCRIPT], env=env, capture_output=True, check=True
        )
        outputs.append(done.stdout)
    assert len(outputs[0]) > 100_000
    assert outputs[0] == outputs[1]
