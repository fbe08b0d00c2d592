"""The report's pictures as inline SVG, laid out here (no Graphviz needed to
write a report, nothing fetched to open one).

Graphs are drawn top-down in layers (a node's layer is its longest distance
from a root, as ``dot`` ranks it), and a layer wider than a row wraps onto
the next rows, so that 600 volumes under their servers make a page a person
scrolls, not one line 100,000 pixels long. Every text drawn comes from the
bank and goes through :func:`esc`; CSS class names come from fixed sets
(:func:`css_class`), never from the bank.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from html import escape

from protectflow.dag import HOOKS, HookDAG
from protectflow.dag.dot import COLOURS
from protectflow.report.data import HookSpan, ResourceRow

__all__ = ["KNOWN_STATES", "css_class", "esc", "hook_dag_svg", "layers", "resource_graph_svg",
           "timeline_svg"]

#: States and statuses the page has a colour for; others are drawn as "other".
KNOWN_STATES = frozenset({
    "available", "error", "protecting", "deleted", "deleting", "copying", "restored",
    "verified", "copied", "done", "not_run", "succeeded", "failed", "timed_out",
    "upstream_failed", "cancelled", "unfinished", "not_started", "corrupt", "success",
})
#: Boxes per row before a layer wraps.
PER_ROW = 12
_BOX_W, _BOX_H, _GAP_X, _GAP_Y = 170, 54, 16, 34
#: CSS colours of the hook DAG's rules (Graphviz's names are not all CSS's).
_RULE_CSS = {"green": "#2ca02c", "gold": "#d4a017", "gray50": "#7f7f7f"}


def esc(text: object) -> str:
    """``text`` safe inside an element or a quoted attribute."""
    return escape(str(text), quote=True)


def css_class(state: str) -> str:
    """The CSS class of a state or status: itself when known, else ``other``."""
    return state if state in KNOWN_STATES else "other"


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "\u2026"


def layers(keys: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """``keys`` in layers from the roots (edges go parent -> child), each
    layer ordered by where its parents stand, then by key."""
    parents: dict[str, list[str]] = {k: [] for k in keys}
    for parent, child in edges:
        if parent in parents and child in parents:
            parents[child].append(parent)
    depth: dict[str, int] = {}
    for key in graphlib.TopologicalSorter(parents).static_order():
        depth[key] = max((depth[p] + 1 for p in parents[key]), default=0)
    found: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for key in sorted(keys):
        found[depth[key]].append(key)
    where: dict[str, int] = {}
    for layer in found:
        layer.sort(key=lambda k: (sum(where[p] for p in parents[k]) / max(len(parents[k]), 1), k))
        where.update((k, i) for i, k in enumerate(layer))
    return found


def _place(keys: Sequence[str], edges: Sequence[tuple[str, str]], *, width: int = _BOX_W,
           height: int = _BOX_H) -> tuple[dict[str, tuple[int, int]], int, int]:
    """Top-left corners of the boxes, and the picture's width and height."""
    at: dict[str, tuple[int, int]] = {}
    y = _GAP_Y // 2
    widest = 0
    for layer in layers(keys, edges):
        for start in range(0, len(layer), PER_ROW):
            row = layer[start:start + PER_ROW]
            for i, key in enumerate(row):
                at[key] = (_GAP_X + i * (width + _GAP_X), y)
            widest = max(widest, len(row))
            y += height + _GAP_Y // 2
        y += _GAP_Y
    return at, _GAP_X + widest * (width + _GAP_X), y


def _edges(at: Mapping[str, tuple[int, int]], edges: Iterable[tuple[str, str, str]], *,
           width: int, height: int) -> Iterator[str]:
    for source, target, colour in edges:
        if source in at and target in at:
            (x1, y1), (x2, y2) = at[source], at[target]
            yield (f'<line x1="{x1 + width // 2}" y1="{y1 + height}" x2="{x2 + width // 2}" '
                   f'y2="{y2}" stroke="{colour}" class="edge"/>')


def resource_graph_svg(rows: Sequence[ResourceRow],
                       dependencies: Sequence[tuple[str, str]]) -> str:
    """One box per resource coloured by its status, with its four hooks'
    states as four small squares; one line per dependency (parent above)."""
    by_key = {r.key: r for r in rows}
    at, w, h = _place(list(by_key), dependencies)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{w}" height="{h}" '
             f'viewBox="0 0 {w} {h}" role="img" aria-label="resource graph">']
    parts += _edges(at, ((p, c, "#999") for p, c in dependencies), width=_BOX_W, height=_BOX_H)
    for key, (x, y) in at.items():
        row = by_key[key]
        tip = f"{key}{f' ({row.name})' if row.name else ''}: {row.status}" + (
            f" -- {row.reason}" if row.reason else "")
        parts.append(f'<g class="res" data-key="{esc(key)}"><title>{esc(tip)}</title>'
                     f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
                     f'class="st-{css_class(row.status)}"/>'
                     f'<text x="{x + 6}" y="{y + 15}" class="t1">'
                     f'{esc(_short(row.type.split("::")[-1], 26))}</text>'
                     f'<text x="{x + 6}" y="{y + 30}" class="t2">{esc(_short(row.id, 26))}</text>')
        for i, hook in enumerate(HOOKS):
            state = row.hooks.get(hook, "not_started")
            parts.append(f'<rect x="{x + 6 + i * 16}" y="{y + 37}" width="12" height="11" '
                         f'class="hk st-{css_class(state)}"><title>{esc(hook)}: {esc(state)}'
                         "</title></rect>")
        parts.append(f'<text x="{x + 72}" y="{y + 47}" class="t3">'
                     f'{esc(_short(row.status, 16))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def hook_dag_svg(dag: HookDAG, states: Mapping[str, str]) -> str:
    """Every hook of ``dag`` as a box coloured by its state in the run
    (``states``: node id -> state), every edge in its rule's colour."""
    keys = [n.id for n in dag.nodes]
    pairs = [(e.source, e.target) for e in dag.edges]
    width = 150
    at, w, h = _place(keys, pairs, width=width, height=36)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{w}" height="{h}" '
             f'viewBox="0 0 {w} {h}" role="img" aria-label="hook DAG">']
    coloured = ((e.source, e.target, _RULE_CSS.get(COLOURS[e.rule], COLOURS[e.rule]))
                for e in dag.edges)
    parts += _edges(at, coloured, width=width, height=36)
    for node in dag.nodes:
        x, y = at[node.id]
        state = states.get(node.id, "not_started")
        parts.append(f'<g class="res" data-key="{esc(node.resource.key)}"><title>'
                     f'{esc(node.id)}: {esc(state)}</title>'
                     f'<rect x="{x}" y="{y}" width="{width}" height="36" rx="5" '
                     f'class="st-{css_class(state)}"/>'
                     f'<text x="{x + 5}" y="{y + 14}" class="t1">{esc(node.hook)}</text>'
                     f'<text x="{x + 5}" y="{y + 28}" class="t2">'
                     f'{esc(_short(node.resource.key, 24))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _lanes(spans: Sequence[HookSpan]) -> list[tuple[str, list[HookSpan]]]:
    """Per worker, its spans in lanes that do not overlap (a worker's
    threads run one hook at a time; a resumed or lost attempt may overlap)."""
    lanes: list[tuple[str, list[HookSpan]]] = []
    for worker in sorted({s.worker for s in spans}):
        mine: list[list[HookSpan]] = []
        for span in (s for s in spans if s.worker == worker):
            lane = next((lane for lane in mine if lane[-1].end <= span.start), None)
            if lane is None:
                mine.append([span])
            else:
                lane.append(span)
        lanes += [(worker if i == 0 else "", lane) for i, lane in enumerate(mine)]
    return lanes


def _seconds(t: float, total: float) -> str:
    """A tick's time, in a unit the run's length reads in: ``12 ms``, ``1.25 s``."""
    if total < 1:
        return f"{t * 1000:.3g} ms"
    return f"{t:.3g} s" if total < 100 else f"{t:.0f} s"


def timeline_svg(spans: Sequence[HookSpan], *, width: int = 1000) -> str:
    """One lane per worker (more where its attempts overlap), one bar per
    hook attempt from its start to its end, coloured by how it ended."""
    if not spans:
        return '<p class="note">This run journaled no hook.</p>'
    t0 = min(s.start for s in spans)
    total = max(max(s.end for s in spans) - t0, 1e-6)
    lanes = _lanes(spans)
    left, lane_h = 230, 18
    h = 24 + lane_h * len(lanes)
    scale = width / total
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{left + width + 20}"'
             f' height="{h}" role="img" aria-label="timeline">']
    for i in range(6):
        x = left + i * width / 5
        parts.append(f'<line x1="{x:.1f}" y1="14" x2="{x:.1f}" y2="{h}" class="tick"/>'
                     f'<text x="{x:.1f}" y="11" class="t3">{_seconds(total * i / 5, total)}</text>')
    for index, (worker, lane) in enumerate(lanes):
        y = 18 + index * lane_h
        parts.append(f'<text x="4" y="{y + 12}" class="t2">{esc(_short(worker, 34))}</text>')
        for s in lane:
            x, bar = left + (s.start - t0) * scale, max((s.end - s.start) * scale, 1.0)
            tip = (f"{s.node} attempt {s.attempt}: {s.outcome}, {s.end - s.start:.3f} s "
                   f"on {s.worker}")
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{bar:.1f}" height="{lane_h - 4}" '
                         f'class="bar st-{css_class(s.outcome)}" data-key="{esc(s.resource)}">'
                         f"<title>{esc(tip)}</title></rect>")
    parts.append("</svg>")
    return "".join(parts)
