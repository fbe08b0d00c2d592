"""The compile, validate and plugins commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from protectflow.cli import main, results
from protectflow.dag import jsonio
from protectflow.plugins.builtin.sim import SIM_TYPES
from tests import needs

REPO = Path(__file__).resolve().parents[2]
TENANT = str(REPO / "examples" / "tenant.yaml")

BAD_PLAN = """\
name: bad
resources:
  - {type: OS::Nova::Server, id: s1, depends_on: ["OS::Cinder::Volume#v1"]}
  - {type: OS::Cinder::Volume, id: v1}
parameters:
  OS::Cinder::Volume: {main_seconds: -1}
  OS::Nova::Server#s1: {bogus: 1}
  OS::Cinder::Volum: {}
"""


def write(tmp_path: Path, text: str, name: str = "plan.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_compile_json_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", TENANT]) == 0
    dag = jsonio.loads(capsys.readouterr().out)
    assert dag.operation == "protect" and len(dag.nodes) == 48 and not dag.pruned


@pytest.mark.parametrize("operation", ["restore", "delete"])
def test_compile_dot_and_text(operation: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", TENANT, "--operation", operation, "--format", "dot"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f'digraph "{operation}: tenant" {{\n') and out.endswith("}\n")
    assert out.count(" -> ") == 84
    assert main(["compile", TENANT, "--operation", operation, "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert f"operation:  {operation}\n" in text and "hooks:      48\n" in text


def test_compile_prune_marks_the_dag(capsys: pytest.CaptureFixture[str]) -> None:
    # The sim plugins implement every hook, so pruning keeps every node and edge.
    assert main(["compile", TENANT, "--prune"]) == 0
    pruned = jsonio.loads(capsys.readouterr().out)
    assert main(["compile", TENANT]) == 0
    full = jsonio.loads(capsys.readouterr().out)
    assert pruned.pruned and pruned.nodes == full.nodes and set(pruned.edges) == set(full.edges)
    assert main(["compile", TENANT, "--prune", "--format", "text"]) == 0
    assert "operation:  protect (pruned)\n" in capsys.readouterr().out


def test_output_file_is_written_whole_with_no_temporary_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dag.json"
    out.write_text("old", encoding="utf-8")
    assert main(["compile", TENANT, "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert main(["compile", TENANT]) == 0
    assert out.read_text(encoding="utf-8") == capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dag.json"]


def test_no_output_file_at_all_on_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = write(tmp_path, BAD_PLAN)
    out = tmp_path / "out" / "dag.json"
    out.parent.mkdir()
    assert main(["compile", plan, "-o", str(out)]) == 2
    assert list(out.parent.iterdir()) == []
    assert "protectflow: error: the protect parameters are not valid" in capsys.readouterr().err
    # An existing file is left as it was.
    out.write_text("old", encoding="utf-8")
    assert main(["compile", plan, "-o", str(out)]) == 2
    assert out.read_text(encoding="utf-8") == "old"
    assert [p.name for p in out.parent.iterdir()] == ["dag.json"]


def test_validate_a_good_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", TENANT, "--operation", "all"]) == 0
    assert capsys.readouterr().out == (
        f"{TENANT}: valid for protect, restore, verify, copy, delete (12 resources, 48 hooks)\n"
    )


def test_validate_lists_every_error_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", write(tmp_path, BAD_PLAN)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    for fragment in (
        "main_seconds: -1 is less than the minimum of 0",
        "OS::Nova::Server#s1: parameters['OS::Nova::Server#s1']: unknown parameter 'bogus'",
        "parameters['OS::Cinder::Volum'] names no resource type or resource of the plan; "
        "did you mean 'OS::Cinder::Volume'?",
    ):
        assert fragment in captured.err, fragment


def test_validate_all_operations_names_the_failing_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The plan's parameters are protect's; the other operations take theirs from
    # --parameters. The sim schemas of restore and verify refuse 'mian_seconds'
    # (each naming its operation); copy and delete take any.
    plan = BAD_PLAN.replace("  OS::Cinder::Volume: {main_seconds: -1}\n", "").replace(
        "  OS::Cinder::Volum: {}\n", ""
    )
    params = write(tmp_path, "OS::Cinder::Volume: {mian_seconds: 1}\n", "params.yaml")
    assert main(["validate", write(tmp_path, plan), "--operation", "all",
                 "--parameters", params]) == 2
    err = capsys.readouterr().err
    heads = [line.split(": ")[0] for line in err.splitlines() if not line.startswith(" ")]
    assert heads == ["protect", "restore", "verify"]
    assert "did you mean 'main_seconds'?" in err


def test_validate_a_malformed_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = write(tmp_path, "name: x\nresources:\n  - {type: T, id: a, nme: q}\n  - {id: 3}\n")
    assert main(["validate", plan]) == 2
    err = capsys.readouterr().err
    assert "unknown field 'nme'; did you mean 'name'?" in err
    assert "resources[1].id: 3 is not of type 'string'" in err
    assert "resources[1]: 'type' is a required property" in err


def test_plugins_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for rtype in SIM_TYPES:
        assert rtype in out
    assert "full schemas: protectflow plugins --json" in out


def test_plugins_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert results.check("plugins", document) == []
    data = document["plugins"]
    assert "sim" in data and list(data) == sorted(data)
    sim = data["sim"]
    assert sim["protectable"]["OS::Nova::Server"] is True
    assert sim["class"] == "protectflow.plugins.builtin.sim.SimProtectionPlugin"
    assert sorted(sim["resource_types"]) == sorted(SIM_TYPES)
    schema = sim["schemas"]["OS::Cinder::Volume"]["protect"]
    assert schema["additionalProperties"] is False and "main_seconds" in schema["properties"]
    assert set(sim["schemas"]["OS::Nova::Server"]) == {"protect", "restore", "verify"}


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_drawing_without_graphviz_says_how_to_install_it(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / f"tenant.{fmt}"
    assert main(["compile", TENANT, "--format", fmt, "-o", str(out)]) != 0
    err = capsys.readouterr().err
    assert f"--format {fmt} needs Graphviz's `dot` program" in err
    assert "apt-get install graphviz" in err and "brew install graphviz" in err
    assert not out.exists()


def test_drawing_without_graphviz_from_the_command(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("protectflow")
    if not exe.exists():
        pytest.skip(f"the protectflow command beside this Python {needs.TEST_EXTRA}")
    env = {**os.environ, "PATH": str(tmp_path)}
    done = subprocess.run([str(exe), "compile", TENANT, "--format", "svg"], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert "install Graphviz: `apt-get install graphviz`" in done.stderr


@needs.tool("dot", "graphviz")
def test_svg_and_png_with_graphviz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tenant.svg"
    assert main(["compile", TENANT, "--format", "svg", "-o", str(out)]) == 0
    root = ET.fromstring(out.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    titles = {t.text for t in root.iter("{http://www.w3.org/2000/svg}title")}
    assert "OS::Nova::Server#web-1/main" in titles
    assert sum("->" in (t or "") for t in titles) == 84  # one <title>a->b</title> per edge
    png = tmp_path / "tenant.png"
    assert main(["compile", TENANT, "--format", "png", "-o", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tenant.png", "tenant.svg"]


def _tenant_1000(tmp_path: Path) -> str:
    plan = tmp_path / "tenant-1000.json"
    subprocess.run([sys.executable, str(REPO / "tools" / "gen_plan.py"), "1000", "--seed", "1",
                    "-o", str(plan)], check=True)
    return str(plan)


def _points(text: str | None) -> float:
    assert text is not None and text.endswith("pt")
    return float(text[:-2])


@needs.tool("dot", "graphviz")
def test_a_thousand_resources_are_drawn_to_be_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _tenant_1000(tmp_path)
    svg = tmp_path / "t.svg"
    assert main(["compile", plan, "--format", "svg", "-o", str(svg)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("protectflow: note: 1000 resources, up to ")
    assert "one box per resource type" in err and "--full draws every hook" in err
    root = ET.fromstring(svg.read_bytes())
    # Readable: at most a poster (about 1.4 m by 1.4 m), not one row 155,122 pt wide.
    assert _points(root.get("width")) <= 4000 and _points(root.get("height")) <= 4000
    texts = "".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "--full draws every hook" in texts  # the note is the picture's title
    png = tmp_path / "t.png"
    assert main(["compile", plan, "--format", "png", "-o", str(png)]) == 0
    data = png.read_bytes()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    # Not cut at Graphviz's 32,767 px: the PNG is the SVG's size at 96 dpi.
    assert abs(width - _points(root.get("width")) * 96 / 72) < 4
    assert abs(height - _points(root.get("height")) * 96 / 72) < 4


def test_full_draws_every_hook_and_a_small_plan_has_no_note(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _tenant_1000(tmp_path)
    assert main(["compile", plan, "--format", "dot", "--full"]) == 0
    out, err = capsys.readouterr()
    assert out.count("subgraph cluster_") == 1000 and err == ""
    assert main(["compile", plan, "--format", "dot"]) == 0
    out, err = capsys.readouterr()
    assert "subgraph cluster_" not in out and "labelloc=t" in out and "note:" in err
    assert main(["compile", TENANT, "--format", "dot"]) == 0
    out, err = capsys.readouterr()
    assert out.count("subgraph cluster_") == 12 and err == ""
