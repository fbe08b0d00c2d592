"""Drawing a HookDAG: Graphviz DOT, one cluster per resource, edges coloured
as in the plugin guide's figure; SVG and PNG through Graphviz's ``dot``."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

from protectflow.dag.model import HOOKS, HookDAG
from protectflow.errors import MissingDependencyError

__all__ = ["COLOURS", "render", "to_dot"]

#: Graphviz colours of the rules; yellow is drawn darker to read on white.
COLOURS = {
    "green": "green3",
    "indigo": "indigo",
    "purple": "purple",
    "yellow": "gold",
    "red": "red",
    "black": "black",
    "implied": "gray50",
}

GRAPHVIZ_HINT = (
    "install Graphviz: `apt-get install graphviz` (Debian, Ubuntu), `dnf install graphviz` "
    "(Fedora), `brew install graphviz` (macOS); or write --format dot and render it elsewhere"
)


# A DOT string: "..." with JSON's escapes, which DOT reads the same way.
_q = json.encoder.encode_basestring


def _lines(dag: HookDAG) -> Iterator[str]:
    yield f"digraph {_q(f'{dag.operation}: {dag.plan}')} {{"
    yield "  rankdir=TB;"
    yield '  node [shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica];'
    yield "  edge [penwidth=1.5];"
    quoted = {n.id: _q(n.id) for n in dag.nodes}  # each id quoted once
    labels = {h: f"[label={_q(h)}];" for h in HOOKS}
    by_resource: dict[str, list[tuple[str, str]]] = {}
    for n in dag.nodes:
        by_resource.setdefault(n.resource.key, []).append((n.id, n.hook))
    for index, resource in enumerate(dag.resources):
        hooks = by_resource.get(resource.key)
        if not hooks:
            continue
        label = resource.key + (f"\n{resource.name}" if resource.name else "")
        yield f"  subgraph cluster_{index} {{"
        yield f"    label={_q(label)}; style=rounded; color=gray60;"
        for nid, hook in hooks:
            yield f"    {quoted[nid]} {labels[hook]}"
        yield "  }"
    attrs = {
        r: f"[color={c}{', style=dashed' if r == 'implied' else ''}];" for r, c in COLOURS.items()
    }
    for source, target, rule in dag.edges:
        yield f"  {quoted[source]} -> {quoted[target]} {attrs[rule]}"
    yield "}"


def to_dot(dag: HookDAG) -> str:
    """The DAG in Graphviz's DOT language (deterministic)."""
    return "\n".join(_lines(dag)) + "\n"


def render(dag: HookDAG, fmt: str) -> bytes:
    """The DAG drawn by Graphviz's ``dot`` as ``fmt`` (``svg`` or ``png``).

    Raises
    ------
    MissingDependencyError
        When Graphviz's ``dot`` program is not installed.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise MissingDependencyError(
            f"--format {fmt} needs Graphviz's `dot` program: {GRAPHVIZ_HINT}"
        )
    done = subprocess.run(
        [exe, f"-T{fmt}"], input=to_dot(dag).encode("utf-8"), capture_output=True, check=False
    )
    if done.returncode != 0:
        raise MissingDependencyError(
            f"Graphviz's dot failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
        )
    return done.stdout
