"""What ``--json`` prints: each command's result as a dict, built in one place
from the library's objects, and the JSON Schemas they follow (shipped in the
package as ``schemas/cli-*.schema.json``).

Times are ISO 8601 UTC strings and durations seconds; resource and hook lists
are sorted, so the same run prints the same document. Every document names
its ``format`` and ``version``; a field is added, never changed, within one
version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import jsonschema
from referencing import Registry as SchemaRegistry
from referencing import Resource as SchemaResource

from protectflow.bank import Checkpoint, CheckpointStore
from protectflow.bank.catalog.check import CheckReport
from protectflow.dag import OPERATIONS, HookDAG
from protectflow.dag.model import Resource
from protectflow.dag.outcomes import ResourceStats, ResourceStatus
from protectflow.errors import BankError, PlanError, ProtectflowError
from protectflow.executors import RunReport
from protectflow.operations import OperationResult
from protectflow.operations.outcomes import total_stats
from protectflow.plugins import Registry
from protectflow.plugins.contract import parameters_schema, supported_types
from protectflow.plugins.queries import SavedInfo
from protectflow.states import CORRUPT

__all__ = [
    "SCHEMAS",
    "check",
    "check_result",
    "checkpoint_page",
    "checkpoint_show",
    "iso_times",
    "operation_result",
    "plugins_result",
    "protectables_result",
    "run_result",
    "saved_info_result",
    "schema",
    "validation_result",
]

VERSION = 1
#: Document kind -> the schema file it follows.
SCHEMAS = {
    "result": "cli-result.schema.json",
    "run": "cli-run.schema.json",
    "checkpoints-list": "cli-checkpoints-list.schema.json",
    "checkpoint-show": "cli-checkpoint-show.schema.json",
    "plugins": "cli-plugins.schema.json",
    "validate": "cli-validate.schema.json",
    "saved-info": "cli-saved-info.schema.json",
    "protectables": "cli-protectables.schema.json",
    "check": "cli-check.schema.json",
}
#: The failures a result lists in full; the counts say how many there were.
_FAILURES_SHOWN = 100


@cache
def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of the ``kind`` document (a key of :data:`SCHEMAS`).

    Raises
    ------
    KeyError
        For an unknown kind.
    """
    text = importlib_resources.files("protectflow").joinpath(f"schemas/{SCHEMAS[kind]}")
    loaded: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return loaded


@cache
def _schemas() -> SchemaRegistry[Any]:
    """Every shipped result schema by its ``$id``: they refer to each other."""
    return SchemaRegistry().with_resources(
        (schema(k)["$id"], SchemaResource.from_contents(schema(k))) for k in SCHEMAS)


def check(kind: str, document: Mapping[str, Any]) -> list[str]:
    """Every way ``document`` breaks the schema of ``kind`` (empty: it is valid).

    Raises
    ------
    KeyError
        For an unknown kind.
    """
    validator = jsonschema.Draft202012Validator(schema(kind), registry=_schemas())
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                  for e in validator.iter_errors(document))


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


def _run(report: RunReport) -> dict[str, Any]:
    """The part of a result that describes the run of hooks."""
    failures = [
        {"node": r.node, "state": r.state, "attempts": r.attempts,
         "error": r.error.type if r.error else None,
         "message": r.error.message if r.error else None}
        for r in report.failed()[:_FAILURES_SHOWN]
    ]
    return {
        "state": report.state, "executor": report.executor, "plan": report.plan,
        "started_at": _iso(report.start), "ended_at": _iso(report.end),
        "duration": round(report.duration, 6), "hooks": len(report.hooks),
        "counts": report.counts(), "resumed": sum(r.resumed for r in report.hooks.values()),
        "failures": failures,
    }


def operation_result(result: OperationResult) -> dict[str, Any]:
    """The ``--json`` document of protect, restore, verify, copy, delete or
    resume; the checkpoint's record is read once for its current status.

    Raises
    ------
    BankError
        If the checkpoint's record cannot be read.
    """
    checkpoint = result.checkpoint  # its record as the operation left it
    resources = _statuses(result.resources)
    target = result.target
    return {
        "format": "protectflow.result", "version": VERSION, "operation": result.operation,
        "ok": result.ok, "checkpoint": checkpoint.id, "bank": checkpoint.bank.url,
        "status": checkpoint.status, "run": _run(result.report), "resources": resources,
        "stats": _stats_json(total_stats(result.resources)),
        "new_resources": dict(sorted(result.new_resources.items())),
        "target": None if target is None else {"checkpoint": target.id,
                                               "bank": target.bank.url},
    }


def run_result(report: RunReport) -> dict[str, Any]:
    """The ``--json`` document of ``run`` (a DAG run with no checkpoint kept)."""
    return {"format": "protectflow.run", "version": VERSION, "operation": report.operation,
            "ok": report.ok, "run": _run(report)}


def _statuses(resources: Mapping[str, ResourceStatus]) -> list[dict[str, Any]]:
    """Each resource's status and reason, sorted by resource."""
    return [{"resource": key, "status": value.status, "reason": value.reason,
             "stats": _stats_json(value.stats)}
            for key, value in sorted(resources.items())]


def _stats_json(stats: ResourceStats | None) -> dict[str, int] | None:
    return None if stats is None else stats.to_json()


def _row(checkpoint: Checkpoint) -> dict[str, Any]:
    """A listing row; a corrupt record is listed as such, not a reason to list nothing."""
    try:
        record = checkpoint.record
    except BankError:
        return {"id": checkpoint.id, "plan": None, "status": CORRUPT, "created_at": None,
                "owner": None, "verification": None, "tags": [], "files": None, "size": None}
    verified = record.verification
    try:
        total = total_stats(checkpoint.resources)
    except BankError:
        total = None
    return {"id": checkpoint.id, "plan": record.plan_name, "status": record.status,
            "created_at": record.created_at, "owner": record.owner,
            "verification": None if verified is None else verified.to_json(),
            "tags": list(record.tags),
            "files": None if total is None else total.files,
            "size": None if total is None else total.size}


def tag_filter(given: Sequence[str]) -> Callable[[Checkpoint], bool] | None:
    """``--tag a --tag b,c``: a checkpoint passes when it carries ``a``, or
    both ``b`` and ``c`` (restic's ``--tag``); None when no tag is given.

    Raises
    ------
    BankError
        If a ``--tag`` holds an empty tag.
    """
    if not given:
        return None
    wanted: list[frozenset[str]] = []
    for text in given:
        tags = frozenset(t.strip() for t in text.split(","))
        if "" in tags:
            raise BankError(f"--tag {text!r} holds an empty tag; write T or T1,T2")
        wanted.append(tags)

    def passes(checkpoint: Checkpoint) -> bool:
        try:
            tags = set(checkpoint.record.tags)
        except BankError:
            return False
        return any(w <= tags for w in wanted)
    return passes


def checkpoint_page(store: CheckpointStore, *, plan: str | None = None, limit: int | None = 20,
                    marker: str | None = None, tags: Sequence[str] = ()) -> dict[str, Any]:
    """One page of ``checkpoints list``, newest first, with the marker of the
    next page when there is one (``None`` on the last page: never a silent cap).

    Parameters
    ----------
    store : CheckpointStore
        The bank's checkpoints.
    plan, marker : str, optional
        As :meth:`CheckpointStore.list`.
    limit : int, optional
        The page size; None lists every checkpoint.
    tags : sequence of str
        ``--tag`` filters (:func:`tag_filter`): a page holds only the
        checkpoints that pass, each record read to tell.

    Raises
    ------
    BankError
        If ``marker`` names no checkpoint, or ``limit`` is below 1.
    """
    if limit is not None and limit < 1:
        raise BankError(f"a page holds at least 1 checkpoint, not {limit}")
    passes = tag_filter(tags)
    # One more than asked: whether it exists says whether there is a next page.
    if passes is None:
        found = store.list(plan=plan, limit=None if limit is None else limit + 1,
                           marker=marker)
    else:
        found = _filtered(store, plan, limit, marker, passes)
    page = found if limit is None else found[:limit]
    more = limit is not None and len(found) > limit
    return {"format": "protectflow.checkpoints", "version": VERSION, "bank": store.bank.url,
            "plan": plan, "checkpoints": [_row(c) for c in page],
            "next_marker": page[-1].id if more else None}


def _filtered(store: CheckpointStore, plan: str | None, limit: int | None, marker: str | None,
              passes: Callable[[Checkpoint], bool]) -> list[Checkpoint]:
    """Up to ``limit + 1`` checkpoints that pass, read a page of the index at a time."""
    found: list[Checkpoint] = []
    while limit is None or len(found) <= limit:
        batch = store.list(plan=plan, limit=100, marker=marker)
        found.extend(c for c in batch if passes(c))
        if len(batch) < 100:
            break
        marker = batch[-1].id
    return found


def checkpoint_show(checkpoint: Checkpoint) -> dict[str, Any]:
    """``checkpoints show``: the record, the resources' statuses, the lease and the runs.

    Raises
    ------
    BankError
        If the record cannot be read.
    """
    record = checkpoint.reload().record
    resources = checkpoint.resources
    lease = checkpoint.lease
    return {
        "format": "protectflow.checkpoint", "version": VERSION, "bank": checkpoint.bank.url,
        "checkpoint": _sorted(record.to_json()),
        "resources": _statuses(resources),
        "stats": _stats_json(total_stats(resources)),
        "busy": None if lease is None else lease.describe(),
        "runs": [{k: _sorted(v) for k, v in run.to_json().items()}
                 for run in checkpoint.list_runs()],
    }


def _sorted(value: Any) -> Any:
    """``value`` with the keys of every JSON object in it sorted, as the bank
    stores a record (and ``checkpoints show`` has always printed it)."""
    if isinstance(value, dict):
        return {k: _sorted(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def plugins_result(registry: Registry) -> dict[str, Any]:
    """``plugins``: every protection plugin, its types, protectables and
    schemas, and the types several plugins claim with no default choice
    (``conflicts``: a plan using one needs a provider that chooses)."""
    plugins = {}
    for name, plugin in sorted(registry.protections.items()):
        types = sorted(supported_types(plugin))
        plugins[name] = {
            "class": f"{type(plugin).__module__}.{type(plugin).__qualname__}",
            "resource_types": types,
            "protectable": {t: t in registry.protectables for t in types},
            "schemas": {t: {op: parameters_schema(plugin, op, t) for op in OPERATIONS[:3]}
                        for t in types},
        }
    return {"format": "protectflow.plugins", "version": VERSION, "plugins": plugins,
            "conflicts": {t: list(names) for t, names in sorted(registry.conflicts().items())}}


def check_result(report: CheckReport, bank: str) -> dict[str, Any]:
    """``verify ID --metadata-only --json``: what the metadata check found."""
    return {"format": "protectflow.check", "version": VERSION, "checkpoint": report.checkpoint,
            "bank": bank, "ok": report.ok, "objects": report.objects, "chunks": report.chunks,
            "problems": list(report.problems)}


def validation_result(plan: str, outcomes: Mapping[str, HookDAG | ProtectflowError]
                      ) -> dict[str, Any]:
    """``validate``: per operation, the compiled DAG's size or every error found.

    Parameters
    ----------
    plan : str
        The plan file, as given.
    outcomes : mapping
        Operation -> its compiled DAG, or the error compiling it raised.
    """
    operations: dict[str, Any] = {}
    for operation, outcome in sorted(outcomes.items()):
        if isinstance(outcome, HookDAG):
            operations[operation] = {"valid": True, "errors": [],
                                     "resources": len(outcome.resources),
                                     "hooks": len(outcome.nodes)}
        else:
            errors = outcome.errors if isinstance(outcome, PlanError) else [str(outcome)]
            operations[operation] = {"valid": False, "errors": list(errors),
                                     "resources": None, "hooks": None}
    return {"format": "protectflow.validation", "version": VERSION, "plan": plan,
            "valid": all(o["valid"] for o in operations.values()), "operations": operations}


def saved_info_result(checkpoint: Checkpoint, saved: SavedInfo) -> dict[str, Any]:
    """``checkpoints show ID --resource TYPE#ID``: what the checkpoint keeps
    about one resource, as its plugin's ``get_saved_info`` gives it, its
    times in ISO 8601 UTC (:func:`iso_times`)."""
    return {"format": "protectflow.saved-info", "version": VERSION, "bank": checkpoint.bank.url,
            "checkpoint": checkpoint.id, **saved.to_json(), "info": iso_times(saved.info)}


def iso_times(value: Any) -> Any:
    """``value`` with every number under a key ending in ``_at`` (Unix
    seconds, as plugins keep times: ``taken_at``, ``frozen_at``) written as
    ISO 8601 UTC, as every other time protectflow prints."""
    if isinstance(value, dict):
        return {k: _iso(v) if isinstance(k, str) and k.endswith("_at")
                and isinstance(v, (int, float)) and not isinstance(v, bool)
                and 0 <= v < 2**33 else iso_times(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [iso_times(v) for v in value]
    return value


def protectables_result(resource_type: str, resources: list[Resource]) -> dict[str, Any]:
    """``protectables TYPE [ID]``: what the type's protectable lists (or shows)."""
    return {"format": "protectflow.protectables", "version": VERSION, "type": resource_type,
            "resources": [r.to_json() for r in sorted(resources, key=lambda r: r.key)]}
