"""Fuzzing the loaders: plans, HookDAG files and bank keys.

Random text and mutated valid documents go into ``parse_plan`` (as YAML and as
JSON), ``compile_plan`` (whatever parses) and ``jsonio.loads``: nothing may
escape but the project's own errors, each with a message. Random strings as
bank keys are either refused with a BankError or stored, read back and listed
under the bank's folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protectflow.bank import Bank
from protectflow.compiler import compile_plan, parse_plan
from protectflow.dag import OPERATIONS, jsonio
from protectflow.errors import BankError, ProtectflowError
from tests.robustness.robust_helpers import DATA

pytestmark = pytest.mark.slow  # fuzzing: hundreds of examples each

GOOD_PLAN: dict[str, Any] = yaml.safe_load((DATA / "plans" / "good.yaml").read_text())
GOOD_PLAN["resources"].append(
    {"type": "OS::Glance::Image", "id": "img", "name": "image", "extra_info": {"a": [1]}}
)
GOOD_PLAN["resources"][0]["depends_on"].append("OS::Glance::Image#img")
GOOD_DAG_TEXT = jsonio.dumps(compile_plan(parse_plan(json.dumps(GOOD_PLAN), source="p.json")))
GOOD_DAG: dict[str, Any] = json.loads(GOOD_DAG_TEXT)

# PROTECTFLOW_FUZZ_EXAMPLES=5000 for a longer hunt than CI's.
EXAMPLES = int(os.environ.get("PROTECTFLOW_FUZZ_EXAMPLES", "250"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values that a plan or DAG file might plausibly hold, the wrong ones included.
NAMES = st.sampled_from([
    "name", "resources", "type", "id", "depends_on", "parameters", "limits", "pools", "bank",
    "extra_info", "format", "version", "nodes", "edges", "hook", "plugin", "rule", "source",
    "target", "operation", "plan", "main", "OS::Nova::Server", "OS::Cinder::Volume#vol",
    "OS::Nova::Server#web", "OS::Nova::Server#web/main", "payload_bytes", "fail", "#", "",
])
SCALARS = (st.none() | st.booleans() | st.integers(-2, 2**70) | st.floats(allow_nan=True)
           | NAMES | st.text(max_size=12))
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES | st.text(max_size=6),
                                                                  inner, max_size=4),
    max_leaves=12,
)


def _mutate(data: st.DataObject, doc: Any) -> Any:
    """One random change somewhere in a JSON tree: replace, delete, add or
    duplicate a value."""
    # Go deep four times out of five: the top level is the least interesting.
    deeper = data.draw(st.integers(0, 4), label="descend") > 0
    if isinstance(doc, (dict, list)) and doc and deeper:
        keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
        key = data.draw(st.sampled_from(keys), label="into")
        action = data.draw(st.sampled_from(["descend", "delete", "duplicate"]), label="action")
        copy: Any = dict(doc) if isinstance(doc, dict) else list(doc)
        if action == "descend":
            copy[key] = _mutate(data, doc[key])
        elif action == "delete":
            del copy[key]
        elif isinstance(copy, list):
            copy.insert(key, doc[key])
        else:
            copy[data.draw(NAMES, label="new key")] = doc[key]
        return copy
    return data.draw(JSON_VALUES, label="replacement")


def _mutated(data: st.DataObject, doc: Any) -> Any:
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        doc = _mutate(data, doc)
    return doc


def _dump(doc: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc)
    return yaml.safe_dump(doc, allow_unicode=True)


def _check_plan(text: str, source: str) -> None:
    try:
        plan = parse_plan(text, source=source)
    except ProtectflowError as err:
        assert str(err).strip(), repr(err)
        event(f"plan refused: {type(err).__name__}")
        return
    for operation in OPERATIONS:
        try:
            compile_plan(plan, operation)
            event(f"plan compiled for {operation}")
        except ProtectflowError as err:
            assert str(err).strip(), repr(err)
            event(f"compile refused: {type(err).__name__}")


def _check_dag(text: str) -> None:
    try:
        dag = jsonio.loads(text, source="fuzz.json")
    except ProtectflowError as err:
        assert str(err).strip(), repr(err)
        event(f"DAG refused: {str(err).split(':')[0][:40]}")
        return
    event("DAG loaded")
    assert jsonio.loads(jsonio.dumps(dag)) == dag  # what loads, round-trips


@FUZZ
@given(text=st.text(max_size=300), fmt=st.sampled_from(["yaml", "json"]))
def test_random_text_as_plan(text: str, fmt: str) -> None:
    _check_plan(text, f"fuzz.{fmt}")


@FUZZ
@given(data=st.data(), fmt=st.sampled_from(["yaml", "json"]))
def test_mutated_plan(data: st.DataObject, fmt: str) -> None:
    _check_plan(_dump(_mutated(data, GOOD_PLAN), fmt), f"fuzz.{fmt}")


@FUZZ
@given(data=st.data(), cut=st.integers(0, 400))
def test_truncated_or_spliced_plan_text(data: st.DataObject, cut: int) -> None:
    text = _dump(GOOD_PLAN, data.draw(st.sampled_from(["yaml", "json"]), label="fmt"))
    junk = data.draw(st.text(alphabet="{}[]:,-#&*!|>'\"\n\t x", max_size=8), label="junk")
    fmt = data.draw(st.sampled_from(["yaml", "json"]), label="as")
    _check_plan(text[:cut] + junk + text[cut:], f"fuzz.{fmt}")


@FUZZ
@given(text=st.text(max_size=300))
def test_random_text_as_dag(text: str) -> None:
    _check_dag(text)


@FUZZ
@given(data=st.data())
def test_mutated_dag(data: st.DataObject) -> None:
    _check_dag(json.dumps(_mutated(data, GOOD_DAG)))


@FUZZ
@given(cut=st.integers(0, len(GOOD_DAG_TEXT)), junk=st.text(max_size=4))
def test_truncated_dag(cut: int, junk: str) -> None:
    _check_dag(GOOD_DAG_TEXT[:cut] + junk)


@pytest.fixture(scope="module")
def fuzz_bank(tmp_path_factory: pytest.TempPathFactory) -> Bank:
    return Bank(tmp_path_factory.mktemp("fuzz") / "inner" / "bank", fsync=False)


KEY_PARTS = st.sampled_from(["a", "..", ".", "", "/", "\\", ".pftmp-x", "\0", "\n", "\x7f",
                             "é", "#", "%2F", " ", "~", "a.b", ".hidden", "\udcff"])
KEYS = st.text(max_size=20) | st.lists(KEY_PARTS | st.text(max_size=3), max_size=6).map("".join)


@settings(FUZZ, max_examples=EXAMPLES * 2)
@given(key=KEYS)
def test_random_bank_keys(fuzz_bank: Bank, key: str) -> None:
    try:
        fuzz_bank.update_object(key, key.encode("utf-8", "surrogatepass"))
    except BankError as err:  # a lone surrogate among them: refused, never a UnicodeError
        assert str(err).strip()
        return
    assert fuzz_bank.get_object(key) == key.encode("utf-8", "surrogatepass")
    assert key in fuzz_bank.list_objects(key.rsplit("/", 1)[0] + "/" if "/" in key else "")
    root = Path(fuzz_bank.url).resolve()
    assert Path(os.path.realpath(os.path.join(fuzz_bank.url, key))).is_relative_to(root)
    fuzz_bank.delete_object(key)
