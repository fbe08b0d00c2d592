"""Drawings that scale: the view follows the plan's size, dot runs in a
bounded time and fails with a short message, and the picture has a legend."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from functools import cache
from pathlib import Path

import pytest

from protectflow.cli.outcome import exit_code
from protectflow.compiler import compile_plan, parse_plan
from protectflow.dag import HookDAG, dot
from protectflow.errors import MissingDependencyError, RenderError
from tests import needs

TOOLS = Path(__file__).resolve().parents[2] / "tools"
needs_dot = needs.tool("dot", "graphviz")


@cache
def tenant(n: int) -> HookDAG:
    sys.path.insert(0, str(TOOLS))
    from gen_plan import generate

    return compile_plan(parse_plan(json.dumps(generate(n, 1)), source="t.json"), "protect")


@cache
def chains(n: int, width: int = 20) -> HookDAG:
    """``n`` volumes in ``width`` chains: at most ``width`` side by side."""
    resources = [{"type": "OS::Cinder::Volume", "id": f"v{i}",
                  **({"depends_on": [f"OS::Cinder::Volume#v{i - width}"]} if i >= width else {})}
                 for i in range(n)]
    plan = {"name": f"chains-{n}", "resources": resources}
    return compile_plan(parse_plan(json.dumps(plan), source="c.json"), "protect")


@pytest.mark.parametrize(("n", "view"), [
    (dot.RESOURCE_VIEW_FROM - 1, "hooks"), (dot.RESOURCE_VIEW_FROM, "resources"),
    (dot.TYPE_VIEW_FROM - 1, "resources"), (dot.TYPE_VIEW_FROM, "types"),
])
def test_the_view_follows_the_number_of_resources(n: int, view: str) -> None:
    dag = chains(n)
    assert len(dag.resources) == n and dot.widest_rank(dag) == 20
    assert dot.choose_view(dag) == view


@pytest.mark.parametrize("n", [5, 40, dot.RESOURCE_VIEW_FROM, dot.TYPE_VIEW_FROM - 1])
def test_a_plan_too_wide_to_read_is_drawn_one_box_per_type(n: int) -> None:
    # The generated tenant's volumes stand side by side under their servers.
    dag = tenant(n)
    wide = dot.widest_rank(dag) > dot.MAX_SIDE_BY_SIDE
    assert (dot.choose_view(dag) == "types") == (wide or n >= dot.TYPE_VIEW_FROM)
    assert wide == (n >= dot.RESOURCE_VIEW_FROM)


def test_the_widest_rank_counts_resources_at_one_distance_from_a_root() -> None:
    assert dot.widest_rank(chains(100, width=7)) == 7
    dag = tenant(40)  # a project, then servers and the rest, then what servers use
    deepest = {r.type for r in dag.resources} - {"OS::Keystone::Project"}
    assert dot.widest_rank(dag) <= len([r for r in dag.resources if r.type in deepest])


def test_a_collapsed_view_says_so_and_how_to_draw_every_hook() -> None:
    assert dot.view_note(tenant(5), "hooks") is None
    note = dot.view_note(tenant(1000), "types")
    assert note is not None and note.startswith("1000 resources, up to ")
    assert note.endswith("--full draws every hook")
    text = dot.to_dot(tenant(1000), view="types", note=note)
    assert f"label={json.dumps(note)}; labelloc=t;" in text
    assert "labelloc" not in dot.to_dot(tenant(5))


def _nodes_and_edges(text: str) -> tuple[set[str], list[tuple[str, str, str]]]:
    nodes = set(re.findall(r'^  ("[^"]*") \[label=', text, re.M))
    edges = re.findall(r'^  ("[^"]*") -> ("[^"]*")(.*);$', text, re.M)
    return {json.loads(n) for n in nodes}, [(json.loads(a), json.loads(b), c) for a, b, c in edges]


def test_the_resource_view_has_a_box_per_resource_and_an_arrow_per_dependency() -> None:
    dag = tenant(40)
    nodes, edges = _nodes_and_edges(dot.to_dot(dag, view="resources"))
    assert nodes == {r.key for r in dag.resources}
    assert sorted((a, b) for a, b, _ in edges) == sorted(dag.dependencies)


def test_the_type_view_counts_resources_and_dependencies() -> None:
    dag = tenant(40)
    text = dot.to_dot(dag, view="types")
    nodes, edges = _nodes_and_edges(text)
    assert nodes == {r.type for r in dag.resources}
    counted = sum(int(n) for n in re.findall(r"\\n(\d+) resources", text))
    assert counted == len(dag.resources)
    assert sum(int(json.loads(re.search(r"label=(\"\d+\")", rest).group(1)))  # type: ignore[union-attr]
               for _, _, rest in edges) == len(dag.dependencies)


def test_the_legend_names_the_six_rules_in_their_colours() -> None:
    text = dot.to_dot(tenant(5), legend=True)
    for rule, colour in dot.COLOURS.items():
        if rule != "implied":
            assert f'<FONT COLOR="{colour}"><B>{rule}</B></FONT>' in text
    assert "legend" not in dot.to_dot(tenant(5))  # --format dot stays as before


def test_an_unknown_view_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown view 'boxes'"):
        dot.to_dot(tenant(5), view="boxes")


@needs_dot
def test_a_small_svg_draws_every_hook_and_the_legend() -> None:
    dag = tenant(5)
    svg = dot.render(dag, "svg").decode()
    assert svg.count('class="node"') == len(dag.nodes) + 1  # and the legend's
    for text in dot.RULES.values():
        assert text.replace("->", "\u2192") in svg


@needs_dot
def test_a_large_svg_draws_one_box_per_resource() -> None:
    dag = chains(dot.RESOURCE_VIEW_FROM + 100)
    svg = dot.render(dag, "svg").decode()
    assert svg.count('class="node"') == len(dag.resources) + 1
    assert "one box per resource" in svg
    assert "&#45;&#45;full draws every hook</text>" in svg  # the note, as its title


@needs_dot
def test_a_png_is_a_png() -> None:
    assert dot.render(tenant(5), "png").startswith(b"\x89PNG")


@needs_dot
def test_dot_past_its_time_is_stopped_with_a_clear_error() -> None:
    with pytest.raises(RenderError, match=r"did not draw the hooks view of 299 resources within"):
        dot.render(tenant(299), "svg", view="hooks", timeout=0.01)


def _fake_dot(folder: Path, script: str) -> None:
    exe = folder / "dot"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)


def test_a_failing_dot_shows_only_the_tail_of_its_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dot(tmp_path, 'i=0; while [ $i -lt 3000 ]; do echo "noise line $i" >&2; '
              'i=$((i+1)); done; echo "trouble in init_rank" >&2; exit 1\n')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(RenderError) as info:
        dot.render(tenant(5), "svg")
    message = str(info.value)
    assert message.endswith("trouble in init_rank")
    assert "noise line 2996" in message and "noise line 2995" not in message
    assert exit_code(info.value) == 1


def test_no_dot_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError, match="apt-get install graphviz"):
        dot.render(tenant(5), "svg")
