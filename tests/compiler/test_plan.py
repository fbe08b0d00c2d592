"""Loading plans: every problem reported at once, each saying where and how to fix it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from protectflow.compiler import Plan, PlanResource, compile_plan, load_plan
from protectflow.dag import Resource
from protectflow.errors import PlanError
from tests.strategies import full_registry


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(tmp_path: Path, name: str, text: str) -> PlanError:
    with pytest.raises(PlanError) as info:
        load_plan(write(tmp_path, name, text))
    return info.value


def test_a_good_plan_loads_from_yaml_and_json_alike(tmp_path: Path) -> None:
    yml = """\
    name: small
    description: two
    resources:
      - {type: T, id: a, name: first, extra_info: {k: 1}, depends_on: ["T#b"]}
      - {type: T, id: b}
    parameters: {T: {x: 1}}
    limits: {T: 2}
    """
    plan = load_plan(write(tmp_path, "p.yaml", yml))
    assert plan.name == "small" and plan.description == "two"
    assert plan.resources == (
        PlanResource(Resource("T", "a"), ("T#b",)),
        PlanResource(Resource("T", "b")),
    )
    assert plan.resources[0].resource.name == "first"
    # relative paths in extra_info are relative to the plan's folder
    assert plan.resources[0].resource.extra_info == {"k": 1, "base_dir": str(tmp_path)}
    assert plan.resources[1].resource.extra_info == {}
    assert plan.parameters == {"T": {"x": 1}} and plan.limits == {"T": 2}
    import json

    again = load_plan(write(tmp_path, "p.json", json.dumps(plan.to_json())))
    assert again == plan and again.to_json() == plan.to_json()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = load_plan(write(elsewhere, "p.json", json.dumps(plan.to_json())))
    assert moved.resources[0].resource.extra_info["base_dir"] == str(tmp_path)  # kept


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    err = errors_of(tmp_path, "bad.yaml", "name: x\nresources:\n  - {type: T, id: a\n  - type: T\n")
    assert "bad.yaml is not valid YAML" in str(err)
    assert "line 4, column 9" in str(err)


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    err = errors_of(tmp_path, "bad.json", '{"name": "x",\n "resources": [}')
    assert "bad.json is not valid JSON" in str(err)
    assert "line 2, column 16" in str(err)


def test_a_missing_file_is_a_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"cannot read plan .*nope.yaml.*No such file"):
        load_plan(tmp_path / "nope.yaml")


def test_a_file_that_is_not_utf8_is_a_plan_error(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(PlanError, match=r"not UTF-8"):
        load_plan(path)


def test_every_schema_error_is_reported_at_once(tmp_path: Path) -> None:
    err = errors_of(
        tmp_path,
        "bad.yaml",
        """\
        nmae: x
        resources:
          - {type: T, id: a, depend_on: [], nme: q}
          - {type: "T x", id: ""}
          - {id: 5, extra_info: []}
          - {type: T, id: b, depends_on: ["nohash", 3]}
        limits: {T: 0}
        """,
    )
    expected = [
        "(top level): 'name' is a required property",
        "(top level): unknown field 'nmae'; did you mean 'name'?",
        "resources[0]: unknown field 'depend_on'; did you mean 'depends_on'?",
        "resources[0]: unknown field 'nme'; did you mean 'name'?",
        "resources[1].id: '' should be non-empty",
        "resources[1].type: 'T x' is not a resource type (no '#' or spaces)",
        "resources[2].extra_info: [] is not of type 'object'",
        "resources[2].id: 5 is not of type 'string'",
        "resources[2]: 'type' is a required property",
        "resources[3].depends_on[0]: 'nohash' is not of the form 'TYPE#ID'",
        "resources[3].depends_on[1]: 3 is not of type 'string'",
        "limits.T: 0 is less than the minimum of 1",
    ]
    text = str(err)
    assert text.startswith("plan ") and "bad.yaml is not valid:" in text
    for line in expected:
        assert f"  - {line}" in text, line
    assert len(text.splitlines()) == len(expected) + 1


def test_an_unknown_field_without_a_close_match_lists_the_known_ones(tmp_path: Path) -> None:
    err = errors_of(tmp_path, "p.yaml", "name: x\nresources: [{type: T, id: a, zzz: 1}]\n")
    assert "unknown field 'zzz'; known fields: depends_on, extra_info, id, name, type" in str(err)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("resources: [{type: T, id: a}]", "(top level): 'name' is a required property"),
        ("name: x", "(top level): 'resources' is a required property"),
        ("name: x\nresources: []", "resources: [] should be non-empty"),
        ("name: x\nresources: [{type: T}]", "resources[0]: 'id' is a required property"),
        ("name: x\nresources: [{id: a}]", "resources[0]: 'type' is a required property"),
        ("[1, 2]", "(top level): the plan is a list; a plan is a mapping with a 'name'"),
        ("", "(top level): the plan is empty; a plan is a mapping with a 'name'"),
        ("name: 3\nresources: [{type: T, id: a}]", "name: 3 is not of type 'string'"),
        ("name: x\nresources: {type: T}", "resources: {'type': 'T'} is not of type 'array'"),
        ("name: x\nresources: [{type: T, id: a, name: [1]}]", "[1] is not of type 'string'"),
        ("name: x\nresources: [{type: T, id: a, depends_on: T#b}]", "'T#b' is not of type"),
        ("name: x\nresources: [{type: T, id: a}]\nparameters: {T: 1}", "1 is not of type"),
        ("name: x\nresources: [{type: T, id: a}]\nlimits: {T: true}", "True is not of type"),
    ],
)
def test_missing_fields_and_wrong_types(tmp_path: Path, text: str, message: str) -> None:
    err = errors_of(tmp_path, "p.yaml", text + "\n")
    assert message in str(err)


def test_duplicates_and_undeclared_dependencies_are_reported_together(tmp_path: Path) -> None:
    err = errors_of(
        tmp_path,
        "p.yaml",
        """\
        name: x
        resources:
          - {type: T, id: web-1, depends_on: ["T#vol-1", "T#vol-2", "T#web-1"]}
          - {type: T, id: vol-1}
          - {type: T, id: web-1}
          - {type: U, id: web-1}
        """,
    )
    assert err.errors == [
        "resources[2]: T#web-1 is listed twice (first at resources[0]); "
        "a resource's identity is TYPE#ID",
        "resources[0] T#web-1 depends on T#vol-2, which the plan does not list: add it to "
        "resources or remove it from depends_on; did you mean 'T#vol-1'?",
        "resources[0] T#web-1 depends on itself",
    ]
    # U#web-1 shares the id of T#web-1 but not its identity: no error for it.
    assert "U#web-1" not in str(err)


def test_a_plan_object_with_a_dangling_dependency_is_a_plan_error() -> None:
    # Plans built in Python skip the loader's checks; the compiler still says what is wrong.
    plan = Plan("x", (PlanResource(Resource("T", "a"), ("T#ghost",)),))
    with pytest.raises(PlanError, match="T#a depends on T#ghost, which is not a resource of"):
        compile_plan(plan, registry=full_registry(["T"]))
