"""A page to look at: one checkpoint and one of its runs as a self-contained
HTML file (``protectflow report ID -o report.html``).

The page shows the checkpoint's record, its runs, each resource's status,
reason and statistics (:mod:`.stats`), the resource graph with each
resource's four hooks, the hook DAG (collapsed per resource when large),
what the run deduplicated, and a timeline of the run's hook attempts per
worker from its journal. It is a view over what the bank holds: reading
(:mod:`.data`) is apart from drawing (:mod:`.svg`, :mod:`.page`), and
everything read from the bank is escaped where it is drawn.

    >>> from protectflow.report import build_report
    >>> html = build_report(checkpoint)                    # doctest: +SKIP
"""

from __future__ import annotations

from protectflow.bank import Checkpoint
from protectflow.report.data import Report, RunNotFoundError, gather
from protectflow.report.page import render_html

__all__ = ["Report", "RunNotFoundError", "build_report", "gather", "render_html"]


def build_report(checkpoint: Checkpoint, *, run: str | None = None) -> str:
    """The HTML page of ``checkpoint`` and its run ``run`` (a journal run id
    or its unique prefix; the last run without).

    Raises
    ------
    RunNotFoundError
        When ``run`` names no run of the checkpoint, or several.
    BankError, CorruptObjectError
        When the checkpoint cannot be read (a damaged object is named).
    """
    return render_html(gather(checkpoint, run=run))
