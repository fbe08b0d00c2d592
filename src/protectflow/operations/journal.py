"""What an operation's journal is written for, and the one way an operation
runs a DAG with its journal.

A journal's ``meta`` (a :class:`~protectflow.bank.catalog.journal.RunMeta`)
names the operation, the fingerprints of the plan and of the compiled DAG,
the version of the distribution behind every protection plugin the DAG uses,
the executor and the parameters. A resumed run must match all but the
executor (see :mod:`protectflow.operations.resume`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from protectflow.bank import Checkpoint
from protectflow.bank.catalog.journal import BankJournal, RunMeta
from protectflow.dag.plan import Plan
from protectflow.executors import RunReport
from protectflow.operations.prepared import Prepared

__all__ = ["JournalMeta", "plan_fingerprint", "run_journaled", "start_journal"]


@attrs.frozen
class JournalMeta:
    """What a run's journal records besides the DAG and the executor: the
    inputs of its :class:`~protectflow.bank.catalog.journal.RunMeta`.

    ``resumes`` is the id of the journal run this one continues; ``redo``
    the journaled successes it runs again on purpose (broken windows).
    """

    owner: str
    plan: Plan
    parameters: Mapping[str, Mapping[str, Any]] | None = None
    plan_source: str | None = None
    resumes: str | None = None
    redo: Iterable[str] = ()


def plan_fingerprint(plan: Plan) -> str:
    """A SHA-256 of the plan's canonical JSON (parameters included)."""
    text = json.dumps(plan.to_json(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def start_journal(checkpoint: Checkpoint, prepared: Prepared, meta: JournalMeta) -> BankJournal:
    """Create the journal of the ``prepared`` run on ``checkpoint``.

    Raises
    ------
    BankError
        If the bank refuses the write.
    """
    source = meta.plan_source
    return BankJournal.start(checkpoint, RunMeta(
        operation=prepared.dag.operation, dag_fingerprint=prepared.fingerprint,
        plan_fingerprint=plan_fingerprint(meta.plan),
        plugin_versions=dict(prepared.plugin_versions),
        executor=prepared.executor.name, owner=meta.owner,
        parameters={k: dict(v) for k, v in (meta.parameters or {}).items()},
        plan_source=os.path.abspath(source) if source and os.path.isfile(source) else None,
        resumes=meta.resumes, redo=tuple(sorted(meta.redo)),
    ))


def run_journaled(checkpoint: Checkpoint, prepared: Prepared, *, meta: JournalMeta,
                  target_checkpoint: Checkpoint | None = None) -> RunReport:
    """Start the journal, run the ``prepared`` DAG on ``checkpoint`` with it,
    and record how the run ended; ``target_checkpoint``: a copy's.

    Raises
    ------
    BankError
        If the bank refuses the journal.
    """
    journal = start_journal(checkpoint, prepared, meta)
    report = prepared.run(checkpoint, journal=journal, target_checkpoint=target_checkpoint)
    journal.finish(report.state)
    return report
