"""Reading HookDAG files: another version, an invalid document, dangling edges
and cycles are DagFormatErrors that say what is wrong."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protectflow.compiler import compile_plan as compile_
from protectflow.compiler import load_plan
from protectflow.dag import HookDAG, jsonio
from protectflow.errors import DagFormatError

TENANT = Path(__file__).resolve().parents[2] / "examples" / "tenant.yaml"


@pytest.fixture(scope="module")
def dag() -> HookDAG:
    return compile_(load_plan(TENANT), "restore")


def doc_of(dag: HookDAG) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(jsonio.dumps(dag))
    return data


def load_doc(doc: Any) -> HookDAG:
    return jsonio.loads(json.dumps(doc), source="d.json")


def test_dump_and_load_through_a_path_and_a_stream(dag: HookDAG, tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    jsonio.dump(dag, path)
    assert jsonio.load(path) == dag
    assert path.read_text(encoding="utf-8") == jsonio.dumps(dag)
    assert [p.name for p in tmp_path.iterdir()] == ["d.json"]  # no temporary left
    buffer = io.StringIO()
    jsonio.dump(dag, buffer)
    buffer.seek(0)
    assert jsonio.load(buffer) == dag


def test_the_file_has_one_node_and_one_edge_per_line(dag: HookDAG) -> None:
    lines = jsonio.dumps(dag).splitlines()
    assert sum('"hook": ' in line for line in lines) == len(dag.nodes)
    assert sum('"rule": ' in line for line in lines) == len(dag.edges)


def test_another_format_version_says_which(dag: HookDAG) -> None:
    doc = doc_of(dag) | {"version": 2}
    with pytest.raises(DagFormatError) as info:
        load_doc(doc)
    assert str(info.value) == (
        "d.json is a HookDAG of format version 2; this protectflow reads version 1: "
        "compile the plan again with this version"
    )
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "d.json is not a HookDAG file: not JSON (Expecting property name"),
        ("[]", 'd.json is not a HookDAG file (no "format": "protectflow.hookdag")'),
        ('{"format": "other"}', 'not a HookDAG file (no "format": "protectflow.hookdag")'),
        ('{"format": "protectflow.hookdag"}', "of format version None"),
    ],
)
def test_not_a_dag_file(text: str, message: str) -> None:
    with pytest.raises(DagFormatError, match=r"protectflow compile|format version|not JSON") as e:
        jsonio.loads(text, source="d.json")
    assert message in str(e.value)


Mutation = Callable[[dict[str, Any]], None]


def _set_hook(d: dict[str, Any]) -> None:
    d["nodes"][0]["hook"] = "mian"


def _drop_edge_rule(d: dict[str, Any]) -> None:
    del d["edges"][3]["rule"]


def _bad_operation(d: dict[str, Any]) -> None:
    d["operation"] = "backup"


def _hook_list(d: dict[str, Any]) -> None:
    d["nodes"][1]["hook"] = ["main"]  # unhashable: once crashed the fast check


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set_hook, "  - nodes/0/hook: 'mian' is not one of"),
        (_drop_edge_rule, "  - edges/3: 'rule' is a required property"),
        (_bad_operation, "  - operation: 'backup' is not one of"),
        (_hook_list, "  - nodes/1/hook: ['main'] is not one of"),
    ],
)
def test_an_invalid_document_lists_the_schema_errors(
    dag: HookDAG, mutate: Mutation, message: str
) -> None:
    doc = doc_of(dag)
    mutate(doc)
    with pytest.raises(DagFormatError) as info:
        load_doc(doc)
    assert str(info.value).startswith("d.json is not a valid HookDAG:\n")
    assert message in str(info.value)


def test_edges_to_unknown_nodes(dag: HookDAG) -> None:
    doc = doc_of(dag)
    doc["edges"].append({"source": doc["nodes"][0]["id"], "target": "ghost", "rule": "green"})
    with pytest.raises(DagFormatError, match=r"an edge names node 'ghost', which is not listed"):
        load_doc(doc)


def test_a_node_of_an_unlisted_resource(dag: HookDAG) -> None:
    doc = doc_of(dag)
    doc["nodes"][0]["resource"]["id"] = "elsewhere"
    with pytest.raises(DagFormatError, match=r"names resource OS::Cinder::Volume#elsewhere"):
        load_doc(doc)


def test_two_nodes_with_one_id(dag: HookDAG) -> None:
    doc = doc_of(dag)
    doc["nodes"][1]["id"] = doc["nodes"][0]["id"]
    with pytest.raises(DagFormatError, match=r"two nodes share an id"):
        load_doc(doc)


def test_a_cyclic_dag_file_names_the_cycle(dag: HookDAG) -> None:
    doc = doc_of(dag)
    # complete -> prepare_begin of the same resource closes a loop through its four hooks.
    v = "OS::Cinder::Volume#db-1-data"
    doc["edges"].append({"source": f"{v}/complete", "target": f"{v}/prepare_begin",
                         "rule": "implied"})
    with pytest.raises(DagFormatError) as info:
        load_doc(doc)
    assert str(info.value) == (
        f"d.json: the hooks form a cycle: {v}/complete -> {v}/prepare_begin -> "
        f"{v}/prepare_finish -> {v}/main -> {v}/complete"
    )


def test_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(DagFormatError, match=r"cannot read DAG file .*missing.json"):
        jsonio.load(tmp_path / "missing.json")
    (tmp_path / "latin.json").write_bytes(b'{"plan": "caf\xe9"}')
    with pytest.raises(DagFormatError, match=r"cannot read DAG file"):
        jsonio.load(tmp_path / "latin.json")
