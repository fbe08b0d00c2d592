"""Input refused early: what a plan may name is what every operation can store
and restore, and a document's reader takes nothing silently (duplicate keys,
alias bombs, recursion, deep nesting); a plan's relative paths are its own."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protectflow import operations
from protectflow.bank import Bank, CheckpointStore
from protectflow.compiler import Plan, PlanResource, compile_plan, load_plan, parse_plan
from protectflow.compiler.documents import MAX_ALIAS_EXPANSION, MAX_DEPTH, parse_document
from protectflow.compiler.names import MAX_SEGMENT_BYTES
from protectflow.dag import Resource
from protectflow.errors import PlanError
from protectflow.plugins.builtin.sim import VOLUME
from tests.strategies import refused_ids, resource_ids

_printable = st.characters(blacklist_categories=("Cs", "Cc"))


def volumes(*ids: str, name: str = "ids") -> str:
    return json.dumps({"name": name, "resources": [{"type": VOLUME, "id": i} for i in ids]})


# -- ids and names -----------------------------------------------------------------
@settings(max_examples=60)
@given(refused_ids)
def test_an_id_no_operation_could_restore_is_refused_naming_the_resource(rid: str) -> None:
    with pytest.raises(PlanError) as info:
        parse_plan(volumes("fine", rid), source="p.json")
    assert len(info.value.errors) >= 1
    for error in info.value.errors:  # the key is shown as repr() shows it
        assert error.startswith((f"resources[1]: resource '{VOLUME}#",
                                 f'resources[1]: resource "{VOLUME}#')), error


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ids=st.lists(st.one_of(
           resource_ids,
           # long ones, up to the limit once escaped (the type takes 19 bytes)
           st.text(st.sampled_from("abcXYZ019-_."), min_size=200,
                   max_size=MAX_SEGMENT_BYTES - len(VOLUME) - 1),
           st.text(st.sampled_from("éü名 %"), min_size=1, max_size=26)),
           min_size=1, max_size=4, unique=True),
       name=st.text(_printable, min_size=1, max_size=40))
@example(ids=["x" * (MAX_SEGMENT_BYTES - len(VOLUME) - 1), "...", ".hidden", "a b"],
         name="n" * MAX_SEGMENT_BYTES)
def test_every_id_and_name_a_plan_accepts_is_protected_and_restored(
        ids: list[str], name: str) -> None:
    plan = parse_plan(volumes(*ids, name=name), source="p.json")  # accepted...
    with tempfile.TemporaryDirectory() as folder:  # ...and a real bank holds it
        bank = Bank(os.path.join(folder, "bank"), fsync=False)
        protected = operations.protect(plan, bank=bank, executor="serial")
        assert protected.ok
        checkpoint = protected.checkpoint.reload()
        assert set(checkpoint.resources) == {f"{VOLUME}#{i}" for i in ids}
        assert [c.id for c in CheckpointStore(bank).list(plan=name)] == [checkpoint.id]
        restored = operations.restore(checkpoint.id, bank=bank, executor="serial")
        assert restored.ok
        assert restored.new_resources == {f"{VOLUME}#{i}": f"restored-{i}" for i in ids}


def test_the_rules_and_the_place_are_named() -> None:
    cases = {
        "a/b": "the id holds a '/'",
        "..": "the id '..' is not allowed",
        "a\x00b": "its key holds the control character '\\x00'",
        "x" * 300: f"its key is 319 bytes once escaped for the bank, more than the "
                   f"{MAX_SEGMENT_BYTES}",
        "é" * 50: "its key is 319 bytes once escaped",
        "\ud800": "is not valid Unicode text",
    }
    for rid, rule in cases.items():
        with pytest.raises(PlanError) as info:
            parse_plan(volumes(rid), source="p.json")
        assert rule in str(info.value), (rid, str(info.value))
    with pytest.raises(PlanError, match=r"name: the plan's name 'a\\tb' holds the control"):
        parse_plan(volumes("v", name="a\tb"), source="p.json")
    with pytest.raises(PlanError, match=r"the plan's name 'n+\.\.\.' is 256 bytes"):
        parse_plan(volumes("v", name="n" * 256), source="p.json")


def test_a_plan_built_in_python_is_checked_too() -> None:
    plan = Plan("p", (PlanResource(Resource(VOLUME, "a/b")),))
    with pytest.raises(PlanError, match="the id holds a '/'"):
        compile_plan(plan, "protect")


def test_a_resource_a_protectable_finds_is_checked_too() -> None:
    doc = {"name": "found", "resources": [
        {"discover": {"type": VOLUME, "parameters": {"ids": ["ok", "../up"]}}}]}
    plan = parse_plan(json.dumps(doc), source="p.json")
    with pytest.raises(PlanError, match=r"discover OS::Cinder::Volume: it listed a resource "
                                        r"no checkpoint can hold:\n.*'OS::Cinder::Volume#\.\./up"
                                        r"': the id holds a '/'"):
        compile_plan(plan, "protect")


# -- the reader ----------------------------------------------------------------------
def nested(depth: int, fmt: str) -> str:
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return (f'{{"a": {inner}}}' if fmt == "json" else f"a: {inner}\n")


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_nesting_is_bounded_and_the_place_named(fmt: str) -> None:
    assert parse_document(nested(MAX_DEPTH, fmt), f"d.{fmt}") is not None
    with pytest.raises(PlanError, match=rf"d\.{fmt} is not valid {fmt.upper()}: it nests "
                                        rf"deeper than {MAX_DEPTH} levels at line 1, column"):
        parse_document(nested(MAX_DEPTH + 1, fmt), f"d.{fmt}")
    with pytest.raises(PlanError, match="nests deeper"):  # far beyond Python's recursion limit
        parse_document(nested(20_000, fmt) if fmt == "json" else nested(999, fmt), f"d.{fmt}")


def test_nesting_through_an_alias_counts_where_it_is_used() -> None:
    half = MAX_DEPTH // 2 + 1
    text = f"x: &x {nested(half, 'yaml')[3:]}y: {'[' * half}*x{']' * half}\n"
    with pytest.raises(PlanError, match="nests deeper than"):
        parse_document(text, "d.yaml")


def test_a_key_given_twice_is_refused_with_both_places() -> None:
    text = "name: x\nextra:\n  path: a\n  other: 1\n  path: b\n"
    with pytest.raises(PlanError, match=r"duplicate key 'path' \(first at line 3, column 3\); "
                                        r"give each key once at line 5, column 3"):
        parse_document(text, "d.yaml")
    with pytest.raises(PlanError, match=r"duplicate key 'k' \(first at line 2, column 3\); "
                                        r"give each key once at line 3, column 3"):
        parse_document('{"a": [{\n  "k": 1,\n  "k": 2}]}', "d.json")
    # a merge key may repeat what it merges: that is what it is for
    merged = parse_document("b: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 3\n", "d.yaml")
    assert merged["m"] == {"x": 3, "y": 2}
    with pytest.raises(PlanError, match="duplicate key 'q'"):
        parse_document("b: &b {x: 1, y: 2, z: 3}\nm:\n  <<: *b\n  q: 1\n  q: 2\n", "d.yaml")


def laughs(levels: int) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_built() -> None:
    assert 9 ** 6 < MAX_ALIAS_EXPANSION < 9 ** 8
    assert len(parse_document(laughs(6), "d.yaml")) == 6  # within the bound: fine
    with pytest.raises(PlanError, match=r"its aliases expand it by [\d,]+ nodes, more than "
                                        r"the 1,000,000 allowed \(this anchor, [\d,]+ nodes "
                                        r"once expanded, is used 10 times\) at line 8, column"):
        parse_document(laughs(9), "d.yaml")
    with pytest.raises(PlanError, match="a recursive alias"):
        parse_document("a: &a {b: [*a]}\n", "d.yaml")


# -- relative paths ------------------------------------------------------------------
@pytest.mark.parametrize(("given", "expected"), [
    ("bank", "{plans}/bank"),
    ("../banks/one", "{tmp}/banks/one"),
    ("file://rel", "file://{plans}/rel"),
    ("/abs/bank", "/abs/bank"),
    ("memory://shared", "memory://shared"),
    ("s3://bucket/path", "s3://bucket/path"),
])
def test_a_relative_bank_is_the_plans_folder_s(tmp_path: Path, given: str, expected: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "p.yaml").write_text(
        f"name: p\nbank: {given}\nprovider: {{bank: {given}}}\n"
        f"resources: [{{type: {VOLUME}, id: v}}]\n")
    monkeypatch.chdir(tmp_path)  # not the plan's folder
    plan = load_plan("plans/p.yaml")
    want = expected.format(plans=plans, tmp=tmp_path)
    assert plan.bank == want
    assert isinstance(plan.provider, dict) and plan.provider["bank"] == want


def test_protect_from_another_folder_writes_the_bank_beside_the_plan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plans, elsewhere = tmp_path / "plans", tmp_path / "elsewhere"
    plans.mkdir()
    elsewhere.mkdir()
    (plans / "p.yaml").write_text(f"name: p\nbank: bank\nresources: [{{type: {VOLUME}, id: v}}]\n")
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("PROTECTFLOW_BANK", raising=False)
    result: Any = operations.protect("../plans/p.yaml", executor="serial", fsync=False)
    assert result.ok
    assert [c.id for c in CheckpointStore(str(plans / "bank")).list()] == [result.checkpoint.id]
    assert list(elsewhere.iterdir()) == []
