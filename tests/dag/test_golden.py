"""Golden files: ``protectflow compile examples/tenant.yaml`` byte for byte.

After an intended change of the output, regenerate them and review the diff:

    PROTECTFLOW_REGEN_GOLDEN=1 pytest tests/dag/test_golden.py
    git diff tests/data/golden
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from protectflow.cli import main
from protectflow.dag import HOOKS

REPO = Path(__file__).resolve().parents[2]
TENANT = REPO / "examples" / "tenant.yaml"
GOLDEN = REPO / "tests" / "data" / "golden"
REGEN = os.environ.get("PROTECTFLOW_REGEN_GOLDEN") == "1"

CASES = [("json", "tenant.protect.json"), ("dot", "tenant.protect.dot"),
         ("text", "tenant.protect.txt")]


@pytest.mark.parametrize(("fmt", "name"), CASES)
def test_compile_output_matches_the_golden_file(fmt: str, name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    assert main(["compile", str(TENANT), "--format", fmt, "-o", str(out)]) == 0
    if REGEN:
        (GOLDEN / name).write_bytes(out.read_bytes())
    assert out.read_bytes() == (GOLDEN / name).read_bytes(), (
        f"{name} differs from the golden file; if the change is intended, run "
        "PROTECTFLOW_REGEN_GOLDEN=1 pytest tests/dag/test_golden.py and review the diff"
    )


def _golden_json() -> Any:
    return json.loads((GOLDEN / "tenant.protect.json").read_text("utf-8"))


def test_the_golden_dag_follows_the_six_rules() -> None:
    # A check of the golden file itself, so that a regenerated one cannot be wrong
    # unnoticed: its edges are exactly those the rules give for its dependencies.
    data = _golden_json()
    keys = [f"{r['type']}#{r['id']}" for r in data["resources"]]
    deps = [tuple(d) for d in data["dependencies"]]
    expected = set()
    for k in keys:
        expected |= {(f"{k}/prepare_begin", f"{k}/prepare_finish", "indigo"),
                     (f"{k}/prepare_finish", f"{k}/main", "yellow"),
                     (f"{k}/main", f"{k}/complete", "red")}
    for parent, child in deps:
        expected |= {(f"{parent}/prepare_begin", f"{child}/prepare_begin", "green"),
                     (f"{child}/prepare_finish", f"{parent}/prepare_finish", "purple"),
                     (f"{child}/complete", f"{parent}/complete", "black")}
    edges = [(e["source"], e["target"], e["rule"]) for e in data["edges"]]
    assert len(edges) == len(set(edges)) and set(edges) == expected
    nodes = {n["id"] for n in data["nodes"]}
    assert nodes == {f"{k}/{h}" for k in keys for h in HOOKS}
    # The tenant: the project over 3 servers, a share and a database; web-1 and web-2
    # share a volume; all three servers share the image and the network.
    assert len(keys) == 12 and len(deps) == 16
    parents_of_image = {p for p, c in deps if c == "OS::Glance::Image#ubuntu-24.04"}
    assert len(parents_of_image) == 3


def test_the_golden_dot_draws_the_golden_json() -> None:
    colours = {"green": "green3", "indigo": "indigo", "purple": "purple", "yellow": "gold",
               "red": "red", "black": "black"}
    drawn = re.findall(r'^  "([^"]+)" -> "([^"]+)" \[color=(\w+)\];$',
                       (GOLDEN / "tenant.protect.dot").read_text("utf-8"), re.MULTILINE)
    edges = [(e["source"], e["target"], colours[e["rule"]])
             for e in _golden_json()["edges"]]
    assert drawn == edges
