"""The steps the operations share: checking their input before anything is
written, holding a checkpoint's lease, turning a run report into statuses,
cleaning up after a failure."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from protectflow.bank import Checkpoint, RunRecord
from protectflow.compiler import ResourceGraph, compile_graph
from protectflow.dag import HookDAG
from protectflow.errors import BankError, ExecutorError, PlanError
from protectflow.executors import RunReport, get_executor
from protectflow.executors.base import Executor

#: The status a resource gets when all its hooks succeeded, per operation.
DONE = {
    "protect": "available",
    "restore": "restored",
    "verify": "verified",
    "copy": "copied",
    "delete": "deleted",
}

#: Seconds an operation's lease lasts unless ``$PROTECTFLOW_LEASE_TTL`` says
#: otherwise; it is renewed every third of that.
LEASE_TTL = 60.0
LEASE_TTL_VARIABLE = "PROTECTFLOW_LEASE_TTL"


def lease_ttl() -> float:
    """Seconds an operation's lease lasts: ``$PROTECTFLOW_LEASE_TTL``, else
    :data:`LEASE_TTL`. Read at each operation's start, never at import.

    Raises
    ------
    BankError
        When the variable is set to anything but a positive number.
    """
    text = os.environ.get(LEASE_TTL_VARIABLE)
    if not text:
        return LEASE_TTL
    try:
        ttl = float(text)
    except ValueError:
        ttl = 0.0
    if not ttl > 0 or ttl == float("inf"):
        raise BankError(f"${LEASE_TTL_VARIABLE}={text!r} is not a positive number of "
                        "seconds; unset it or give one (60 by default)")
    return ttl


def check_limits(dag: HookDAG, limits: Mapping[str, int],
                 pools: Mapping[str, Any] | None = None) -> None:
    """Refuse limits that name no resource type (or pool) of ``dag``.

    Raises
    ------
    ExecutorError
        Naming the limit and the known names.
    """
    known = {r.type for r in dag.resources} | set(pools or ())
    for name, value in limits.items():
        if name not in known:
            raise ExecutorError(
                f"bad limit {name}={value}: {name!r} is no resource type or pool of this "
                f"{dag.operation}; known: {', '.join(sorted(known))}"
            )


def executor(executor: str | Executor, options: dict[str, Any], dag: HookDAG | None = None,
              plan_json: Mapping[str, Any] | None = None) -> Executor:
    """Make the executor now, so a bad name fails before anything is written
    (and check the limits against ``dag`` for the same reason); the plan's
    pools join the run's options."""
    if plan_json and plan_json.get("pools"):
        options.setdefault("pools", plan_json["pools"])
    if dag is not None:
        check_limits(dag, options.get("limits") or {}, options.get("pools"))
    if not isinstance(executor, str):
        return executor
    made = {k: options.pop(k) for k in ("workers", "scheduler", "client") if k in options}
    return get_executor(executor, **made)


def graph_json(dag: HookDAG) -> dict[str, Any]:
    return {
        "resources": [r.to_json() for r in dag.resources],
        "dependencies": [list(pair) for pair in dag.dependencies],
    }


def checkpoint_dag(
    checkpoint: Checkpoint, operation: str, parameters: Mapping[str, Mapping[str, Any]] | None
) -> HookDAG:
    """The DAG of ``operation`` over the checkpoint's saved resource graph."""
    try:
        graph = ResourceGraph.from_json(checkpoint.resource_graph)
    except PlanError as err:
        raise BankError(f"checkpoint {checkpoint.id} holds a resource graph that cannot be "
                        f"read: {err}; restore its record from a copy of the bank") from err
    plan = checkpoint.plan
    return compile_graph(
        graph, operation, parameters=parameters or {}, plan_name=plan.get("name", ""),
        limits=plan.get("limits", {}),
    )


def require_status(checkpoint: Checkpoint, operation: str, *, resuming: bool = False) -> None:
    status = checkpoint.status
    allowed = ("available", "error") if operation == "delete" else ("available",)
    if operation == "delete" and status == "error_deleting":
        return  # a failed delete may be tried again
    if status not in allowed:
        raise BankError(
            f"cannot {operation} checkpoint {checkpoint.id}: it is {status}"
            + (f" ({checkpoint.record.get('status_reason')})"
               if checkpoint.record.get("status_reason") else "")
            + f"; {operation} needs a checkpoint that is {' or '.join(allowed)}"
        )
    if checkpoint.busy and not resuming:  # a resumed run may reclaim a dead owner's lease
        lease = checkpoint.lease
        raise BankError(f"cannot {operation} checkpoint {checkpoint.id}: it is busy with "
                        f"{lease.describe() if lease else 'another operation'}")


def record_run(
    checkpoint: Checkpoint, operation: str, owner: str, report: RunReport,
    resources: dict[str, dict[str, Any]],
) -> RunRecord:
    run = checkpoint.start_run(operation, owner)
    for key, value in resources.items():
        run.set_resource(key, value["status"], value["reason"])
    for record in report.hooks.values():
        run.new_resources.update(record.new_resources or {})
    run.finish("success" if report.ok else "error")
    checkpoint.save_run(run)
    return run


def statuses(dag: HookDAG, report: RunReport) -> dict[str, dict[str, Any]]:
    """Each resource's status and reason, from its hooks' records."""
    done = DONE[dag.operation]
    out: dict[str, dict[str, Any]] = {r.key: {"status": done, "reason": None}
                                      for r in dag.resources}
    for record in report.hooks.values():
        entry = out[record.resource]
        if entry["status"] == "error":
            continue
        if record.state in ("failed", "timed_out"):
            message = record.error.message if record.error else record.state
            entry.update(status="error", reason=f"{record.hook} {record.state}: {message}")
        elif record.state in ("upstream_failed", "cancelled") and entry["status"] == done:
            why = "a hook it waits for failed" if record.state == "upstream_failed" else (
                "the run was cancelled or stopped after a failure")
            entry.update(status="not_run", reason=f"{record.hook} not run: {why}")
    return out


def on_failure(dag: HookDAG, checkpoint: Checkpoint, registry_spec: str | None) -> dict[str, str]:
    """Call every plugin's ``on_failure`` for each resource of a run that did
    not succeed (a frozen application is thawed now, not at its deadline);
    returns the clean-ups that failed, by resource key."""
    from protectflow.plugins import get_registry

    registry = get_registry(registry_spec)
    plugins = {n.resource.key: n.plugin for n in dag.nodes}
    errors: dict[str, str] = {}
    for resource in dag.resources:
        if resource.key not in plugins:
            continue
        try:
            registry.plugin(plugins[resource.key]).on_failure(
                checkpoint, resource, None, dag.parameters.get(resource.key, {}))
        except Exception as err:  # one failed clean-up must not stop the others
            errors[resource.key] = f"clean-up after the failure failed: {err}"
    return errors


def reason(report: RunReport) -> str | None:
    if report.ok:
        return None
    failed = report.failed()
    counts = report.counts()
    head = (f"{failed[0].node}: {failed[0].error.message if failed[0].error else failed[0].state}"
            if failed else f"run {report.state}")
    return (f"{head} ({counts.get('failed', 0) + counts.get('timed_out', 0)} failed, "
            f"{counts.get('upstream_failed', 0) + counts.get('cancelled', 0)} not run)")


def copy_objects(source: Checkpoint, target: Checkpoint) -> None:
    """Copy the checkpoint's own data objects, each as the value it is (bytes,
    text or JSON); a plugin's large data lives in its own shared areas, which
    its copy hooks copy."""
    base = source.prefix + "data/"
    for key in source.bank.iter_objects(base):
        dest = target.prefix + "data/" + key[len(base):]
        target.bank.update_object(dest, source.bank.get_object(key))
    dag_key = "dag.json"
    if source.bank.has_object(source.prefix + dag_key):
        target.bank.update_object(target.prefix + dag_key,
                                  source.bank.get_object(source.prefix + dag_key))


@contextmanager
def renewing(checkpoint: Checkpoint) -> Iterator[None]:
    """Renew the checkpoint's lease every third of its life while the block runs."""
    stop = threading.Event()
    ttl = lease_ttl()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                checkpoint.renew(ttl=ttl)
            except BankError:
                return  # lost: gc will judge the checkpoint; the run goes on

    thread = threading.Thread(target=renew, name="protectflow-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def failing_on_crash(checkpoint: Checkpoint, status: str) -> Iterator[None]:
    """If the block raises (Ctrl-C, a bank error), leave ``status``, not a
    checkpoint stuck in an in-progress state."""
    try:
        yield
    except BaseException as err:
        # Already moved on, or the bank is gone: gc resolves it then.
        with suppress(BankError):
            checkpoint.transition(status, reason=f"interrupted: {type(err).__name__}: {err}")
        raise
    finally:
        if status == "error":  # protect and copy targets hold the lease from create()
            checkpoint.release()
