"""Drawing a HookDAG: Graphviz DOT, edges coloured as in the plugin guide's
figure; SVG and PNG through Graphviz's ``dot``, in a bounded time.

Three views, as a DAG grows past what a picture can show:

- ``hooks``: one cluster per resource holding its hooks, every edge drawn;
- ``resources``: one box per resource (its four hooks folded into it), one
  arrow per dependency (parent -> child: the green, purple and black edges
  between them folded into one);
- ``types``: one box per resource type with its count, one arrow per pair of
  types with the number of dependencies it stands for.

:func:`choose_view` picks the view from the number of resources (``dot`` takes
minutes on a few hundred resources' hooks and fails on a thousand) and from
how many of them would stand side by side (``dot`` lays each rank out as one
row: 600 volumes under their servers make a picture 100,000 pt wide, which a
PNG cuts at 32,767 px); :func:`view_note` says what a collapsed view left out,
and goes into the picture's title. :func:`render` adds a legend of the six
rules' colours.
"""

from __future__ import annotations

import graphlib
import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator

from protectflow.dag.model import HOOKS, HookDAG
from protectflow.errors import MissingDependencyError, RenderError

__all__ = [
    "COLOURS", "MAX_SIDE_BY_SIDE", "RESOURCE_VIEW_FROM", "RULES", "TYPE_VIEW_FROM", "VIEWS",
    "choose_view", "render", "to_dot", "view_note", "widest_rank",
]

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

#: The six rules as DESIGN.md states them: A -> B, B waits for A.
RULES = {
    "green": "parent.prepare_begin -> child.prepare_begin",
    "indigo": "r.prepare_begin -> r.prepare_finish",
    "purple": "child.prepare_finish -> parent.prepare_finish",
    "yellow": "r.prepare_finish -> r.main",
    "red": "r.main -> r.complete",
    "black": "child.complete -> parent.complete",
}

VIEWS = ("hooks", "resources", "types")
#: From this many resources, :func:`render` draws one box per resource...
RESOURCE_VIEW_FROM = 300
#: ...and from this many, one box per resource type.
TYPE_VIEW_FROM = 2000
#: At most this many boxes side by side (a picture about 8,000 pt wide) in
#: the hooks and resources views; wider graphs are drawn one box per type.
MAX_SIDE_BY_SIDE = 40
#: Lines of Graphviz's own error shown when it fails.
_TAIL_LINES = 5

GRAPHVIZ_HINT = (
    "install Graphviz: `apt-get install graphviz` (Debian, Ubuntu), `dnf install graphviz` "
    "(Fedora), `brew install graphviz` (macOS); or write --format dot and render it elsewhere"
)


# A DOT string: "..." with JSON's escapes, which DOT reads the same way.
_q = json.encoder.encode_basestring


def widest_rank(dag: HookDAG) -> int:
    """How many of ``dag``'s resources (those with hooks) share one rank of a
    top-down drawing at most: resources at the same longest distance from a
    root, as ``dot`` ranks them."""
    drawn = {n.resource.key for n in dag.nodes}
    parents: dict[str, list[str]] = {key: [] for key in drawn}
    for parent, child in dag.dependencies:
        if parent in drawn and child in drawn:
            parents[child].append(parent)
    depth: dict[str, int] = {}
    for key in graphlib.TopologicalSorter(parents).static_order():
        depth[key] = max((depth[p] + 1 for p in parents[key]), default=0)
    return max(Counter(depth.values()).values(), default=0)


def choose_view(dag: HookDAG) -> str:
    """The view a drawing of ``dag`` can afford: ``hooks`` below
    :data:`RESOURCE_VIEW_FROM` resources, ``types`` from :data:`TYPE_VIEW_FROM`,
    ``resources`` between; ``types`` too whenever more than
    :data:`MAX_SIDE_BY_SIDE` resources would stand side by side."""
    n = len(dag.resources)
    if n >= TYPE_VIEW_FROM or widest_rank(dag) > MAX_SIDE_BY_SIDE:
        return "types"
    return "hooks" if n < RESOURCE_VIEW_FROM else "resources"


def view_note(dag: HookDAG, view: str) -> str | None:
    """What a drawing of ``dag`` in ``view`` leaves out, and how to draw it
    all; None for the full ``hooks`` view."""
    if view == "hooks":
        return None
    n = len(dag.resources)
    if view == "resources":
        why = f"{n} resources: drawn one box per resource (its hooks folded)"
    else:
        why = (f"{n} resources, up to {widest_rank(dag)} side by side: drawn one box per "
               "resource type, with counts")
    return f"{why}; --full draws every hook"


def _header(dag: HookDAG, view: str) -> Iterator[str]:
    per = {"hooks": "", "resources": " (one box per resource)", "types": " (one box per type)"}
    title = f"{dag.operation}: {dag.plan}{per[view]}"
    yield f"digraph {_q(title)} {{"
    yield "  rankdir=TB;"
    if view != "hooks":  # straight lines and fewer passes: a large graph lays out in seconds
        yield "  splines=line; nslimit=2; mclimit=0.5;"
    yield '  node [shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica];'
    yield "  edge [penwidth=1.5];"


def _hooks(dag: HookDAG) -> Iterator[str]:
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


def _resources(dag: HookDAG) -> Iterator[str]:
    hooks = Counter(n.resource.key for n in dag.nodes)
    for resource in dag.resources:
        if hooks[resource.key]:
            name = f"\n{resource.name}" if resource.name else ""
            label = f"{resource.key}{name}\n{hooks[resource.key]} hooks"
            yield f"  {_q(resource.key)} [label={_q(label)}];"
    for parent, child in dag.dependencies:
        if hooks[parent] and hooks[child]:
            yield f"  {_q(parent)} -> {_q(child)};"


def _types(dag: HookDAG) -> Iterator[str]:
    kinds = {r.key: r.type for r in dag.resources}
    counts = Counter(kinds.values())
    for rtype, n in sorted(counts.items()):
        label = f"{rtype}\n{n} resources"
        yield f"  {_q(rtype)} [label={_q(label)}];"
    pairs = Counter((kinds[p], kinds[c]) for p, c in dag.dependencies)
    for (parent, child), n in sorted(pairs.items()):
        yield f"  {_q(parent)} -> {_q(child)} [label={_q(str(n))}];"


def _legend(view: str) -> Iterator[str]:
    """A table of the six rules in their colours (HTML-like label: one node)."""
    rows = "".join(
        f'<TR><TD ALIGN="LEFT"><FONT COLOR="{COLOURS[rule]}"><B>{rule}</B></FONT></TD>'
        f'<TD ALIGN="LEFT">{text.replace("->", "&#8594;")}</TD></TR>'
        for rule, text in RULES.items()
    )
    folded = ("" if view == "hooks" else
              '<TR><TD COLSPAN="2" ALIGN="LEFT">an arrow here: parent &#8594; child, '
              "its green, purple and black edges folded</TD></TR>")
    yield "  subgraph cluster_legend {"
    yield '    label="legend: B waits for A in A -> B"; style=rounded; color=gray60;'
    yield ('    legend [shape=plaintext, style="", label=<<TABLE BORDER="0" CELLSPACING="2">'
           f"{rows}{folded}</TABLE>>];")
    yield "  }"


def _title(note: str | None) -> Iterator[str]:
    """The note as the picture's visible title (after the clusters, which
    would otherwise inherit it as their label)."""
    if note:
        yield f"  label={_q(note)}; labelloc=t; fontsize=18; fontname=Helvetica;"


def to_dot(dag: HookDAG, *, view: str = "hooks", legend: bool = False,
           note: str | None = None) -> str:
    """The DAG in Graphviz's DOT language (deterministic).

    Parameters
    ----------
    dag : HookDAG
        The DAG to draw.
    view : {'hooks', 'resources', 'types'}
        One node per hook, per resource or per resource type.
    legend : bool
        Add a legend of the rules' colours.
    note : str, optional
        A title shown on the picture (:func:`view_note`'s).

    Raises
    ------
    ValueError
        For an unknown view.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")
    body = {"hooks": _hooks, "resources": _resources, "types": _types}[view]
    lines = [*_header(dag, view), *body(dag), *(_legend(view) if legend else ()),
             *_title(note), "}"]
    return "\n".join(lines) + "\n"


def render(dag: HookDAG, fmt: str, *, view: str | None = None, timeout: float = 60.0) -> bytes:
    """The DAG drawn by Graphviz's ``dot`` as ``fmt`` (``svg`` or ``png``), with a
    legend, and :func:`view_note`'s note as its title.

    Parameters
    ----------
    dag : HookDAG
        The DAG to draw.
    fmt : str
        A Graphviz output format.
    view : str, optional
        As :func:`to_dot`; :func:`choose_view` if omitted.
    timeout : float
        Seconds ``dot`` may take before it is stopped.

    Raises
    ------
    MissingDependencyError
        When Graphviz's ``dot`` program is not installed.
    RenderError
        When ``dot`` fails (the last lines of its message are shown) or runs
        past ``timeout``.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise MissingDependencyError(
            f"--format {fmt} needs Graphviz's `dot` program: {GRAPHVIZ_HINT}"
        )
    view = view or choose_view(dag)
    text = to_dot(dag, view=view, legend=True, note=view_note(dag, view)).encode("utf-8")
    try:
        done = subprocess.run([exe, f"-T{fmt}"], input=text, capture_output=True,
                              check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RenderError(
            f"Graphviz's dot did not draw the {view} view of {len(dag.resources)} resources "
            f"within {timeout:g} s; write --format dot and draw it with more time, or draw a "
            "smaller plan"
        ) from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        tail = "\n".join(line[:200] for line in lines[-_TAIL_LINES:])
        raise RenderError(
            f"Graphviz's dot could not draw the {view} view of {len(dag.resources)} resources "
            f"(exit {done.returncode}); its last words:\n{tail}"
        )
    return done.stdout
