"""Running a plan or a HookDAG as it is, outside the checkpoints a bank
keeps (``protectflow run``): for trying a plan, timing executors, debugging
plugins.

A protect's hooks get a checkpoint in a throw-away bank, so plugins that keep
data in the bank work and nothing outlives the run; the other operations
need a checkpoint that holds data (``restore ID``...), and their hooks get
``None``. The throw-away bank's key is wrapped by a random password kept
beside it in the same temporary folder: no key file is written into the
user's key folder, where it would outlive the bank.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.compiler import Plan, compile_plan, load_plan
from protectflow.dag import HookDAG, jsonio
from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import ExecutorError
from protectflow.executors import Executor, RunReport, run_dag
from protectflow.operations.lease import default_owner
from protectflow.operations.preflight import check_resources, make_executor

__all__ = ["Runnable", "prepare_run", "run_scratch", "scratch_checkpoint"]


@attrs.frozen
class Runnable:
    """A HookDAG ready to run, the pools its limits may name and the
    provider configuring its plugins (a plan's)."""

    dag: HookDAG
    pools: Mapping[str, list[str]] = attrs.field(factory=dict, hash=False)
    provider: str | dict[str, Any] | None = attrs.field(default=None, hash=False)


def prepare_run(source: Runnable | Plan | HookDAG | str | os.PathLike[str], *,
                operation: str | None = None,
                parameters: Mapping[str, Mapping[str, Any]] | None = None) -> Runnable:
    """A HookDAG (object or ``.json`` file) as it is, or a plan (object or
    file) compiled for ``operation`` (default: protect), with its pools.

    A plan compiles with ``parameters`` when given, else with its own for a
    protect and with none for the other operations (a plan's parameters are
    its protect's). A HookDAG holds its parameters: giving any is an error.

    Raises
    ------
    ExecutorError
        When ``operation`` is not the given DAG's.
    PlanError, PluginError, DagFormatError
        For a bad plan, parameters or DAG file.
    """
    name = "the DAG"
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        source = jsonio.load(name) if _is_hookdag(name) else load_plan(name)
    if isinstance(source, Plan):
        operation = operation or "protect"
        if parameters is None:
            parameters = source.parameters if operation == "protect" else {}
        return Runnable(compile_plan(source, operation, parameters=parameters),
                        dict(source.pools), source.provider)
    if parameters is not None:
        raise ExecutorError(f"{name} is a compiled DAG: its parameters are in it; drop "
                            "--parameters, or compile the plan with them")
    runnable = source if isinstance(source, Runnable) else Runnable(source)
    if operation is not None and operation != runnable.dag.operation:
        raise ExecutorError(
            f"{name} is a {runnable.dag.operation} DAG; drop --operation {operation} or "
            f"compile the plan for {operation}"
        )
    return runnable


def run_scratch(runnable: Runnable, executor: str | Executor,
                options: Mapping[str, Any]) -> RunReport:
    """Check the limits and (for a protect) what the plugins can check of the
    sources, make the executor, and run ``runnable`` with a scratch checkpoint
    for a protect's hooks.

    Raises
    ------
    PreflightError
        Listing every problem the plugins find with a protect's sources,
        before anything runs.
    """
    dag = runnable.dag
    runner, run_options = make_executor(executor, options, dag, pools=runnable.pools,
                                        provider=runnable.provider)
    if dag.operation == "protect":  # the others have no checkpoint to check against
        check_resources(dag, registry=run_options.get("registry"))
    with scratch_checkpoint(dag) as checkpoint:
        return run_dag(dag, runner, checkpoint=checkpoint, **run_options)


@contextmanager
def scratch_checkpoint(dag: HookDAG) -> Iterator[Checkpoint | None]:
    """A checkpoint in a throw-away bank for the hooks of a protect, removed
    with its bank when the block ends; ``None`` for the other operations."""
    if dag.operation != "protect":
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="protectflow-run-") as folder:
        password = os.path.join(folder, "password")
        fd = os.open(password, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(16))
        bank = Bank(os.path.join(folder, "bank"), password_file=password)
        checkpoint = CheckpointStore(bank).create(
            Plan(dag.plan or "run", ()), ResourceGraph.from_dag(dag), jsonio.fingerprint(dag),
            default_owner())
        try:
            yield checkpoint
        finally:
            checkpoint.release()


def _is_hookdag(path: str) -> bool:
    """Whether ``path`` looks like a HookDAG file: a ``.json`` file whose
    format names itself in its first lines (the loader checks the rest)."""
    if not path.endswith(".json"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    return '"protectflow.hookdag"' in head
