"""What a report shows, read from a checkpoint into plain, typed values.

Everything here comes from the bank, so everything is untrusted text: the
page (:mod:`.page`) escapes every string it is given, and nothing read here
chooses a path, a command or a URL. A run is one journal run
(:func:`~protectflow.bank.catalog.journal.read_journal`): its entries give
each hook's attempts (start, end, worker, outcome) and each hook's output,
where a plugin's statistics live (the fs plugin's main hook returns its
files, bytes and what it reused).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from protectflow.bank import Checkpoint
from protectflow.bank.catalog.journal import JournalEntry, JournalRun, read_journal
from protectflow.bank.catalog.runs import RunRecord
from protectflow.dag import HookDAG, jsonio
from protectflow.dag.outcomes import ResourceStatus
from protectflow.errors import ProtectflowError
from protectflow.report.stats import resource_stats
from protectflow.states import STARTED, SUCCEEDED

__all__ = ["HookSpan", "Report", "ResourceRow", "RunInfo", "RunNotFoundError", "gather"]

#: A hook's state in the report when its run never started it.
NOT_STARTED = "not_started"
#: A hook started and never ended (the run died, or still runs).
UNFINISHED = "unfinished"


class RunNotFoundError(ProtectflowError, LookupError):
    """No run of the checkpoint, or several, start with the id asked for."""


@attrs.frozen
class HookSpan:
    """One attempt of one hook: from ``start`` to ``end`` (Unix seconds) on
    ``worker``, ending in ``outcome`` (``succeeded``, ``failed``,
    ``timed_out``, or ``unfinished``)."""

    node: str
    attempt: int
    start: float
    end: float
    worker: str
    outcome: str

    @property
    def resource(self) -> str:
        """The key of the resource the hook belongs to."""
        return self.node.rpartition("/")[0]

    @property
    def hook(self) -> str:
        """The hook's name (``main``...)."""
        return self.node.rpartition("/")[2]


@attrs.frozen
class RunInfo:
    """One run of the checkpoint, as the run list shows it."""

    id: str
    operation: str
    executor: str
    owner: str
    started_at: str
    state: str | None
    resumes: str | None


@attrs.frozen
class ResourceRow:
    """One resource: its identity, how the run left it, its statistics as
    label/value pairs, and the state of each of its hooks in the run."""

    key: str
    type: str
    id: str
    name: str | None
    status: str
    reason: str | None
    stats: tuple[tuple[str, Any], ...]
    hooks: Mapping[str, str] = attrs.field(hash=False)


@attrs.frozen
class Report:
    """Everything a report page shows of one checkpoint and one of its runs."""

    checkpoint: str
    bank: str
    plan: str
    status: str
    status_reason: str | None
    created_at: str
    owner: str
    resources: tuple[ResourceRow, ...]
    dependencies: tuple[tuple[str, str], ...]
    dag: HookDAG | None
    runs: tuple[RunInfo, ...]
    run: RunInfo | None
    spans: tuple[HookSpan, ...]


def _spans(entries: tuple[JournalEntry, ...]) -> list[HookSpan]:
    """Each attempt's span; an attempt with no end lasts to the journal's last time."""
    starts: dict[tuple[str, int], float] = {}
    spans: list[HookSpan] = []
    last = max((e.time for e in entries), default=0.0)
    for entry in entries:
        if entry.event == STARTED:
            starts[(entry.node, entry.attempt)] = entry.time
            continue
        start = starts.pop((entry.node, entry.attempt), entry.time)
        spans.append(HookSpan(entry.node, entry.attempt, start, entry.time,
                              entry.worker or "?", entry.event))
    spans += [HookSpan(node, attempt, start, last, "?", UNFINISHED)
              for (node, attempt), start in starts.items()]
    return sorted(spans, key=lambda s: (s.start, s.node, s.attempt))


def _hook_states(spans: list[HookSpan]) -> dict[str, dict[str, str]]:
    """Resource key -> hook -> the outcome of its last attempt."""
    states: dict[str, dict[str, str]] = {}
    for span in sorted(spans, key=lambda s: (s.attempt, s.end)):
        states.setdefault(span.resource, {})[span.hook] = span.outcome
    return states


def _outputs(run: JournalRun | None) -> dict[str, dict[str, Any]]:
    """Resource key -> hook -> the output of its success, where it is an object."""
    found: dict[str, dict[str, Any]] = {}
    for entry in run.entries if run is not None else ():
        if entry.event == SUCCEEDED and isinstance(entry.output, dict):
            key, _, hook = entry.node.rpartition("/")
            found.setdefault(key, {})[hook] = entry.output
    return found


def _select(runs: list[JournalRun], wanted: str | None) -> JournalRun | None:
    """The run ``wanted`` names (an id or its unique prefix); the last one without.

    Raises
    ------
    RunNotFoundError
        For no run or several by that name, listing the runs there are.
    """
    if wanted is None:
        return runs[-1] if runs else None
    found = [r for r in runs if r.run_id.startswith(wanted)]
    if len(found) == 1:
        return found[0]
    ids = ", ".join(r.run_id for r in runs) or "none"
    what = "several runs of this checkpoint start" if found else \
        "no run of this checkpoint starts"
    raise RunNotFoundError(f"{what} with {wanted!r}; its runs: {ids}")


def _statuses(checkpoint: Checkpoint, run: JournalRun | None,
              records: list[RunRecord]) -> Mapping[str, ResourceStatus]:
    """How the run left each resource: a protect's are the checkpoint's; a
    restore's or verify's, its run record's (the first written after it began)."""
    if run is None or run.meta.operation == "protect":
        return checkpoint.resources
    after = [r for r in records if r.operation == run.meta.operation and r.id >= run.run_id]
    return min(after, key=lambda r: r.id).resources if after else {}


def _dag(checkpoint: Checkpoint) -> HookDAG | None:
    """The protect's hook DAG the checkpoint keeps, if it keeps a readable one."""
    key = checkpoint.prefix + "dag.json"
    try:
        if not checkpoint.bank.has_object(key):
            return None
        raw = checkpoint.bank.get_object(key)
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        return jsonio.loads(text, source=key)
    except (ProtectflowError, UnicodeDecodeError):
        return None  # the page still shows the resource graph


def gather(checkpoint: Checkpoint, *, run: str | None = None) -> Report:
    """What the report of ``checkpoint`` shows, for ``run`` (a journal run id
    or its unique prefix; the last run without).

    Raises
    ------
    RunNotFoundError
        When ``run`` names no run, or several.
    BankError, CorruptObjectError
        When the checkpoint's objects cannot be read or do not read as what
        they should be.
    """
    runs = read_journal(checkpoint)
    chosen = _select(runs, run)
    spans = _spans(chosen.entries) if chosen is not None else []
    states = _hook_states(spans)
    outputs = _outputs(chosen)
    statuses = _statuses(checkpoint, chosen, checkpoint.list_runs())
    record = checkpoint.record
    rows = []
    for key, resource in record.resource_graph.resources.items():
        status = statuses.get(key)
        rows.append(ResourceRow(
            key=key, type=resource.type, id=resource.id, name=resource.name,
            status=status.status if status is not None else NOT_STARTED,
            reason=status.reason if status is not None else None,
            stats=resource_stats(status, outputs.get(key, {})),
            hooks=states.get(key, {})))
    infos = tuple(_info(r) for r in runs)
    return Report(
        checkpoint=checkpoint.id, bank=checkpoint.bank.url, plan=record.plan_name,
        status=record.status, status_reason=record.status_reason,
        created_at=record.created_at, owner=record.owner, resources=tuple(rows),
        dependencies=tuple(record.resource_graph.dependencies()), dag=_dag(checkpoint),
        runs=infos, run=None if chosen is None else _info(chosen), spans=tuple(spans))


def _info(run: JournalRun) -> RunInfo:
    meta = run.meta
    return RunInfo(id=run.run_id, operation=meta.operation, executor=meta.executor,
                   owner=meta.owner, started_at=meta.started_at,
                   state=run.end.state if run.end is not None else None, resumes=meta.resumes)
