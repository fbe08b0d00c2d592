"""Properties of the HookDAG's JSON format over compiled DAGs and mutated documents."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protectflow.compiler import compile_plan, parse_plan
from protectflow.dag import OPERATIONS, jsonio
from protectflow.plugins.registry import Registry
from tests.strategies import Spec, full_registry, mutated, registry_plugins, set_path, specs

# The plan of the one-resource DAG whose document each of _DAG_CASES breaks.
_PLAN = {"name": "p", "resources": [{"type": "T", "id": "a"}]}


@settings(max_examples=60)
@given(specs(max_size=8), st.sampled_from(OPERATIONS), st.booleans(), st.data())
def test_json_round_trips_and_validates_against_the_schema(
    spec: Spec, operation: str, prune: bool, data: st.DataObject
) -> None:
    plugins = data.draw(registry_plugins(spec.types, [operation]))
    registry = Registry(plugins)
    params = {spec.keys[0]: {"odd \"key\"\n": [1, "é"]}, spec.types[0]: {"n": 1.5}}
    plan = spec.to_plan()
    dag = compile_plan(plan, operation, registry=registry, parameters=params, prune=prune)
    text = jsonio.dumps(dag)
    jsonschema.validate(json.loads(text), jsonio.dag_schema())
    back = jsonio.loads(text)
    assert back == dag
    # Resource equality is (type, id) only: check the rest survives too.
    assert [r.to_json() for r in back.resources] == [r.to_json() for r in dag.resources]
    assert back.parameters == dag.parameters and back.pruned == prune
    assert jsonio.dumps(back) == text
    assert jsonio.fingerprint(back) == jsonio.fingerprint(dag)


def _dag_docs() -> st.SearchStrategy[dict[str, object]]:
    def to_doc(spec: Spec) -> dict[str, object]:
        registry = full_registry(spec.types)
        dag = compile_plan(spec.to_plan(), "protect", registry=registry)
        doc: dict[str, object] = json.loads(jsonio.dumps(dag))
        return doc

    return specs(max_size=2).map(to_doc)


@pytest.mark.slow  # 500 examples
@settings(max_examples=500)
@given(mutated(_dag_docs()))
def test_fast_dag_check_never_accepts_what_the_schema_rejects(doc: dict[str, object]) -> None:
    schema_ok = jsonschema.Draft202012Validator(jsonio.dag_schema()).is_valid(doc)
    if jsonio._plainly_valid(doc):
        assert schema_ok, doc


_DAG_CASES = [
    ("resources.0.extra_info", []), ("resources.0.id", ""), ("resources.0.type", 1),
    ("resources.0.zone", "x"), ("dependencies", [["a"]]), ("dependencies", [["a", 1]]),
    ("dependencies", [["a", "b", "c"]]), ("nodes.0.hook", ["main"]), ("nodes.0.hook", "mian"),
    ("nodes.0.plugin", ""), ("nodes.0.plugin", None), ("nodes.0.id", ""),
    ("nodes.0.resource", {"type": "T"}), ("nodes.0.resource.extra_info", {}),
    ("nodes.0.extra", 1), ("nodes.0.hook", "-"), ("edges.0.rule", {}),
    ("edges.0.rule", "blue"), ("edges.0.source", 1), ("edges.0.weight", 1),
    ("edges.0.rule", "-"), ("limits", {"T": 0}), ("parameters", {"T": 1}),
    ("pruned", "no"), ("operation", "backup"), ("plan", None), ("version", True),
]


@pytest.mark.parametrize(("path", "value"), _DAG_CASES)
def test_fast_dag_check_on_known_tricky_documents(path: str, value: Any) -> None:
    dag = compile_plan(
        parse_plan(json.dumps(_PLAN)),
        registry=full_registry(["T"]),
    )
    doc = json.loads(jsonio.dumps(dag))
    doc["resources"][0]["extra_info"] = {"k": 1}
    doc["dependencies"] = [["T#a", "T#a"]]
    assert jsonio._plainly_valid(doc)
    doc = set_path(doc, path, value)
    assert not jsonschema.Draft202012Validator(jsonio.dag_schema()).is_valid(doc)
    assert not jsonio._plainly_valid(doc)
