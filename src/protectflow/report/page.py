"""The report as one self-contained HTML page: inline CSS, inline SVG and a
few lines of inline JavaScript; nothing is fetched to open it.

Every string from the bank (resource names and ids, reasons, plugin
outputs, worker names, run ids) goes through :func:`~.svg.esc`. The page's
Content-Security-Policy allows no network at all, and runs only the one
script it was written with (by its hash): were a planted ``<script>`` ever
to slip past the escaping, the browser would still not run it.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Iterator

from protectflow import __version__
from protectflow.report.data import Report, RunInfo
from protectflow.report.stats import dedup_summary, label, shown
from protectflow.report.svg import css_class, esc, hook_dag_svg, resource_graph_svg, timeline_svg

__all__ = ["HOOK_VIEW_MAX", "render_html"]

#: Up to this many resources, the page draws every hook of the DAG; above,
#: the resource graph's boxes (four hook squares each) stand for it.
HOOK_VIEW_MAX = 40

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top}th{background:#f3f3f3}.kv th{width:11em}
.scroll{overflow:auto;max-height:80vh;border:1px solid #ddd}
.note{color:#555;font-style:italic}
svg text{font:11px system-ui,sans-serif;fill:#222}svg .t1{font-weight:600}
svg .t3{fill:#444}.edge{stroke-width:1;opacity:.6}.tick{stroke:#ddd}
rect{stroke:#666;stroke-width:.6}.res{cursor:pointer}.res.hl rect,.bar.hl{stroke:#000;
stroke-width:2.5}tr.hl{outline:2px solid #000}
.st-available,.st-succeeded,.st-restored,.st-verified,.st-copied,.st-done,.st-success{
fill:#c8ecc8;background:#c8ecc8}
.st-error,.st-failed,.st-timed_out,.st-corrupt{fill:#f6b5b5;background:#f6b5b5}
.st-protecting,.st-deleting,.st-copying,.st-unfinished{fill:#fde7a9;background:#fde7a9}
.st-not_run,.st-upstream_failed,.st-cancelled,.st-not_started,.st-deleted{fill:#e4e4e4;
background:#e4e4e4}.st-other{fill:#d9d2f0;background:#d9d2f0}
.hk.st-succeeded{fill:#2e9e2e}.hk.st-failed,.hk.st-timed_out{fill:#d62728}
.hk.st-unfinished{fill:#e0a000}.hk.st-upstream_failed,.hk.st-cancelled{fill:#aaa}
.hk.st-not_started{fill:#fff}
#filter{margin:.4em 0;padding:3px;width:24em}
"""

# Click a box, a bar or a row: the resource is marked everywhere. Type in
# the filter: rows whose text lacks it hide. Only the DOM's text APIs: no
# markup is ever built from the page's data.
_JS = """
(function(){
function mark(key){
  document.querySelectorAll('.hl').forEach(function(e){e.classList.remove('hl');});
  document.querySelectorAll('[data-key]').forEach(function(e){
    if(e.getAttribute('data-key')===key){e.classList.add('hl');}});
  var row=document.querySelector('tr.hl');if(row){row.scrollIntoView({block:'nearest'});}
}
document.querySelectorAll('[data-key]').forEach(function(e){
  e.addEventListener('click',function(){mark(e.getAttribute('data-key'));});});
var f=document.getElementById('filter');
f.addEventListener('input',function(){
  var q=f.value.toLowerCase();
  document.querySelectorAll('#resources tbody tr').forEach(function(r){
    r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':'';});
});
document.body.setAttribute('data-ready','1');
})();
"""


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(_JS.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src 'sha256-{digest}'")


def _kv(rows: list[tuple[str, object]]) -> str:
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>"
                    for k, v in rows if v is not None)
    return f'<table class="kv">{cells}</table>'


def _counts(report: Report) -> str:
    """``12: 11 available, 1 error``."""
    counts = Counter(r.status for r in report.resources)
    return f"{len(report.resources)}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def _header(report: Report) -> Iterator[str]:
    yield f"<h1>checkpoint {esc(report.checkpoint)}</h1>"
    yield _kv([("bank", report.bank), ("plan", report.plan), ("status", report.status),
               ("reason", report.status_reason), ("created at", report.created_at),
               ("owner", report.owner), ("resources", _counts(report))])
    dedup = dedup_summary([r.stats for r in report.resources])
    yield "<h2>What was deduplicated</h2>"
    yield (f"<p>{esc(dedup)}</p>" if dedup else
           '<p class="note">Not known: no resource of this run reports it.</p>')


def _run_row(run: RunInfo, chosen: RunInfo | None) -> str:
    mark = " (shown)" if chosen is not None and run.id == chosen.id else ""
    cells = [run.id + mark, run.operation, run.executor, run.owner, run.started_at,
             run.state or "did not end", run.resumes or ""]
    return "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"


def _runs(report: Report) -> Iterator[str]:
    yield "<h2>Runs</h2>"
    if not report.runs:
        yield '<p class="note">This checkpoint has no run journal.</p>'
        return
    yield ("<table><thead><tr><th>run (report --run ID)</th><th>operation</th>"
           "<th>executor</th><th>owner</th><th>started at</th><th>ended</th>"
           "<th>resumes</th></tr></thead><tbody>")
    yield from (_run_row(run, report.run) for run in report.runs)
    yield "</tbody></table>"


def _graphs(report: Report) -> Iterator[str]:
    yield "<h2>Resource graph</h2>"
    yield ('<p class="note">Each box is a resource (parent above child), coloured by its '
           "status; its four squares are its hooks (prepare_begin, prepare_finish, main, "
           "complete) in the run shown. Click one to find it in the table.</p>")
    yield f'<div class="scroll">{resource_graph_svg(report.resources, report.dependencies)}</div>'
    yield "<h2>Hook DAG</h2>"
    if report.dag is None:
        yield '<p class="note">The checkpoint keeps no hook DAG to draw.</p>'
    elif len(report.dag.resources) > HOOK_VIEW_MAX:
        yield (f'<p class="note">{len(report.dag.nodes)} hooks of {len(report.dag.resources)} '
               "resources: collapsed per resource, as the resource graph's boxes above "
               "show them.</p>")
    else:
        states = {f"{r.key}/{hook}": state for r in report.resources
                  for hook, state in r.hooks.items()}
        yield f'<div class="scroll">{hook_dag_svg(report.dag, states)}</div>'


def _stats_cell(stats: tuple[tuple[str, object], ...]) -> str:
    return "<br>".join(f"{esc(label(k))}: {esc(shown(k, v))}" for k, v in stats)


def _resources(report: Report) -> Iterator[str]:
    yield "<h2>Resources</h2>"
    yield '<input id="filter" type="search" placeholder="filter: type, id, status, reason">'
    yield ('<div class="scroll"><table id="resources"><thead><tr><th>resource</th>'
           "<th>name</th><th>status</th><th>reason</th><th>statistics</th></tr></thead><tbody>")
    for r in report.resources:
        yield (f'<tr data-key="{esc(r.key)}"><td>{esc(r.key)}</td><td>{esc(r.name or "")}</td>'
               f'<td class="st-{css_class(r.status)}">{esc(r.status)}</td>'
               f'<td>{esc(r.reason or "")}</td><td>{_stats_cell(r.stats)}</td></tr>')
    yield "</tbody></table></div>"


def _timeline(report: Report) -> Iterator[str]:
    yield "<h2>Timeline</h2>"
    if report.run is None:
        yield '<p class="note">No run to show.</p>'
        return
    yield (f'<p class="note">The {esc(report.run.operation)} run {esc(report.run.id)}: one '
           "lane per worker thread, one bar per hook attempt, from the run's journal.</p>")
    yield f'<div class="scroll">{timeline_svg(report.spans)}</div>'


def render_html(report: Report) -> str:
    """The whole page of ``report``."""
    body = [*_header(report), *_runs(report), *_resources(report), *_graphs(report),
            *_timeline(report)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{esc(_csp())}">'
            f"<title>protectflow report: checkpoint {esc(report.checkpoint)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body)
            + f'\n<p class="note">written by protectflow {esc(__version__)}</p>'
            + f"<script>{_JS}</script></body></html>\n")
