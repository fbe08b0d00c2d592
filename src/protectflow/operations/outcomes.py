"""What a run leaves behind: each resource's status and reason, the run
record kept in the bank, the plugins' clean-up after a failure, and the
result an operation returns.

The framework, not the plugins, decides the statuses, from the run report.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import attrs

from protectflow.bank import Checkpoint, RunRecord
from protectflow.bank.catalog.runs import last_reports
from protectflow.dag import HookDAG
from protectflow.dag.outcomes import ResourceStats, ResourceStatus
from protectflow.errors import BankError, OperationInterrupted
from protectflow.executors import RunReport
from protectflow.plugins import get_registry
from protectflow.plugins.contract import StatusUpdate, call_hook
from protectflow.states import (
    DONE,
    ERROR,
    FAILED,
    FAILED_STATES,
    NOT_RUN,
    NOT_RUN_STATES,
    TIMED_OUT,
    UPSTREAM_FAILED,
)

__all__ = ["OperationResult", "naming_interrupts", "next_steps", "note_verification",
           "on_failure", "reason",
           "record_run", "resource_stats", "status_updates", "statuses", "total_stats"]

#: A run record's status when its run succeeded (``error`` otherwise).
RUN_SUCCESS = "success"


@attrs.frozen
class OperationResult:
    """What an operation did: its checkpoint, its run report, and for
    restore, verify, copy and delete the run record kept in the bank."""

    operation: str
    checkpoint: Checkpoint
    report: RunReport
    resources: dict[str, ResourceStatus] = attrs.field(hash=False)
    run: RunRecord | None = None
    target: Checkpoint | None = None
    #: What a verify's metadata check found (see :func:`protectflow.operations.check`):
    #: every object of the checkpoint that fails authentication, every chunk missing.
    problems: tuple[str, ...] = ()
    #: What the operation wants its user to know that is not a failure (a
    #: read-only bank: it ran without its lease, journal or run record).
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every hook succeeded and the metadata check found no problem."""
        return self.report.ok and not self.problems

    @property
    def new_resources(self) -> dict[str, Any]:
        """What restore hooks published as the new resources' ids."""
        return dict(self.run.new_resources) if self.run is not None else {}


def note_verification(result: OperationResult) -> None:
    """Keep how a verify ended in its checkpoint's record, so that ``checkpoints
    show`` and ``list`` tell a checkpoint that failed it; on a bank that cannot
    be written (read-only) the result alone says."""
    failures = [*result.problems, *(
        f"{r.node}: {r.error.message if r.error else r.state}" for r in result.report.failed())]
    with suppress(BankError):
        result.checkpoint.set_verification(ok=result.ok, problems=len(failures),
                                           summary=failures[0] if failures else (
                                               None if result.ok
                                               else f"run {result.report.state}"))


def statuses(dag: HookDAG, report: RunReport) -> dict[str, ResourceStatus]:
    """Each resource's status and reason, from its hooks' records."""
    done = ResourceStatus(DONE[dag.operation])
    out = dict.fromkeys((r.key for r in dag.resources), done)
    for record in report.hooks.values():
        entry = out[record.resource]
        if entry.status == ERROR:
            continue
        if record.state in FAILED_STATES:
            message = record.error.message if record.error else record.state
            out[record.resource] = ResourceStatus(
                ERROR, f"{record.hook} {record.state}: {message}")
        elif record.state in NOT_RUN_STATES and entry.status == done.status:
            why = "a hook it waits for failed" if record.state == UPSTREAM_FAILED else (
                "the run was cancelled or stopped after a failure")
            out[record.resource] = ResourceStatus(NOT_RUN, f"{record.hook} not run: {why}")
    for key, warnings in _warnings(report).items():
        if out[key].status == done.status:  # a failure's reason says more
            out[key] = ResourceStatus(done.status, _summary(warnings))
    for key, stats in resource_stats(report).items():
        out[key] = attrs.evolve(out[key], stats=stats)
    return out


def resource_stats(report: RunReport) -> dict[str, ResourceStats]:
    """What each resource's hooks reported of its data (see
    :meth:`ResourceStats.of_output`), summed over its hooks; resources whose
    plugin reports nothing are absent."""
    out: dict[str, ResourceStats] = {}
    for record in sorted(report.hooks.values(), key=lambda r: r.node):
        found = ResourceStats.of_output(record.output)
        if found is not None:
            out[record.resource] = out.get(record.resource, ResourceStats()) + found
    return out


def total_stats(resources: Mapping[str, ResourceStatus]) -> ResourceStats | None:
    """The sum of the resources' stats; None when none has any."""
    found = [s.stats for s in resources.values() if s.stats is not None]
    return sum(found, ResourceStats()) if found else None


#: Warnings a resource's reason spells out; the report holds them all.
_SHOWN = 3


def _warnings(report: RunReport) -> dict[str, list[str]]:
    """Each resource's hook warnings (a file changed while read, a device
    not restored...), in the order they were logged."""
    out: dict[str, list[str]] = {}
    for record in sorted(report.hooks.values(), key=lambda r: r.node):
        for _, level, message in record.log:
            if level == "warning":
                out.setdefault(record.resource, []).append(message)
    return out


def _summary(warnings: list[str]) -> str:
    more = f"; and {len(warnings) - _SHOWN} more (see --report)" if len(warnings) > _SHOWN else ""
    return f"{len(warnings)} warning(s): " + "; ".join(warnings[:_SHOWN]) + more


def with_cleanup(resources: dict[str, ResourceStatus],
                 cleanup: dict[str, str]) -> dict[str, ResourceStatus]:
    """``resources`` with each failed clean-up appended to its resource's reason."""
    out = dict(resources)
    for key, error in cleanup.items():
        reason_now = out[key].reason
        out[key] = attrs.evolve(out[key], reason=f"{reason_now}; {error}" if reason_now
                                else error)
    return out


def record_run(
    checkpoint: Checkpoint, operation: str, owner: str, report: RunReport,
    resources: dict[str, ResourceStatus],
) -> RunRecord:
    """Save the run record of a run on ``checkpoint``: who ran it, how each
    resource ended, the new resources its hooks published, and the statuses
    they reported through Karbor's ``restore``, ``verify`` or
    ``checkpoint_copy`` object (the last report of each resource, across
    hooks, wins)."""
    run = checkpoint.start_run(operation, owner)
    new_resources: dict[str, Any] = {}
    for record in report.hooks.values():
        new_resources.update(record.new_resources or {})
    run = run.finished(RUN_SUCCESS if report.ok else ERROR, resources=resources,
                       new_resources=new_resources,
                       status_updates=last_reports(status_updates(report)))
    checkpoint.save_run(run)
    return run


def status_updates(report: RunReport) -> list[StatusUpdate]:
    """Every status update the run's hooks reported, oldest first (ties in
    the order of the hooks' nodes, so the same report gives the same list)."""
    found = [(update.time, node, index, update)
             for node, record in sorted(report.hooks.items())
             for index, update in enumerate(record.status_updates)]
    return [update for *_, update in sorted(found, key=lambda item: item[:3])]


def on_failure(dag: HookDAG, checkpoint: Checkpoint, registry_spec: str | None) -> dict[str, str]:
    """Call every plugin's ``on_failure`` for each resource of a run that did
    not succeed (a frozen application is thawed now, not at its deadline),
    by keyword as every hook is called (a plugin without one has nothing to
    undo); returns the clean-ups that failed, by resource key."""
    registry = get_registry(registry_spec)
    plugins = {n.resource.key: n.plugin for n in dag.nodes}
    errors: dict[str, str] = {}
    for resource in dag.resources:
        if resource.key not in plugins:
            continue
        try:
            call_hook(registry.plugin(plugins[resource.key]), "failure", checkpoint=checkpoint,
                      resource=resource, context=None,
                      parameters=dag.parameters.get(resource.key, {}))
        except Exception as err:  # one failed clean-up must not stop the others
            errors[resource.key] = f"clean-up after the failure failed: {err}"
    return errors


def reason(report: RunReport) -> str | None:
    """Why a run failed, in one line (its first failure and the counts);
    ``None`` for a run that succeeded."""
    if report.ok:
        return None
    failed = report.failed()
    counts = report.counts()
    head = (f"{failed[0].node}: {failed[0].error.message if failed[0].error else failed[0].state}"
            if failed else f"run {report.state}")
    n_failed = sum(counts.get(state, 0) for state in (FAILED, TIMED_OUT))
    n_not_run = sum(counts.get(state, 0) for state in sorted(NOT_RUN_STATES))
    return f"{head} ({n_failed} failed, {n_not_run} not run)"


def next_steps(checkpoint_id: str, bank: str | None = None) -> str:
    """What to do after a failed or interrupted operation.

    Parameters
    ----------
    checkpoint_id : str
        The checkpoint.
    bank : str, optional
        Its bank, named in the commands (so that they work from anywhere).

    Returns
    -------
    str
        The commands that resume or delete the checkpoint.
    """
    where = ["--bank", bank] if bank is not None else []
    resume = shlex.join(["protectflow", "resume", checkpoint_id, *where])
    delete = shlex.join(["protectflow", "delete", checkpoint_id, *where])
    return f"resume with `{resume}` (after fixing the cause), or delete with `{delete}`"


@contextmanager
def naming_interrupts(checkpoint: Checkpoint, operation: str) -> Iterator[None]:
    """Turn a Ctrl-C or termination signal that ends the block into
    :class:`~protectflow.errors.OperationInterrupted`, naming the checkpoint,
    so that the caller can say what to resume. Put it outside the blocks that
    mark the checkpoint and release its lease: they have run when it raises.

    Raises
    ------
    OperationInterrupted
        From the interrupt, as its cause.
    """
    try:
        yield
    except OperationInterrupted:
        raise
    except KeyboardInterrupt as err:
        raise OperationInterrupted(operation, checkpoint.id, checkpoint.bank.url) from err
