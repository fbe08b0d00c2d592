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
from protectflow.executors import Executor, RunReport
from protectflow.operations.lease import default_owner
from protectflow.operations.prepared import Prepared, RunSettings, prepare, resolve
from protectflow.plugins.providers import Provider, resolve_provider
from protectflow.plugins.registry import get_registry

__all__ = ["Runnable", "prepare_run", "run_scratch", "scratch_checkpoint"]


@attrs.frozen
class Runnable:
    """A HookDAG ready to run, the pools its limits may name and the
    provider configuring its plugins (a plan's: its document form, or as
    resolved when the plan was compiled)."""

    dag: HookDAG
    pools: Mapping[str, list[str]] = attrs.field(factory=dict, hash=False)
    provider: str | dict[str, Any] | Provider | None = attrs.field(default=None, hash=False)


def prepare_run(source: Runnable | Plan | HookDAG | str | os.PathLike[str], *,
                operation: str | None = None,
                parameters: Mapping[str, Mapping[str, Any]] | None = None,
                registry: str | None = None) -> Runnable:
    """A HookDAG (object or ``.json`` file) as it is, or a plan (object or
    file) compiled for ``operation`` (default: protect), with its pools.

    A plan compiles with ``parameters`` when given, else with its own for a
    protect and with none for the other operations (a plan's parameters are
    its protect's), under its provider resolved once (against ``registry``,
    the run's). A HookDAG holds its parameters: giving any is an error.

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
        provider = resolve_provider(source.provider, get_registry(registry))
        return Runnable(compile_plan(source, operation, parameters=parameters,
                                     provider=provider), dict(source.pools), provider)
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
                settings: RunSettings) -> RunReport:
    """Prepare the run of ``runnable`` (:func:`~protectflow.operations.prepared.prepare`),
    check (for a protect) what the plugins can check of the sources, and run
    it with a scratch checkpoint for a protect's hooks.

    Raises
    ------
    PreflightError
        Listing every problem the plugins find with a protect's sources,
        before anything runs.
    """
    prepared = prepare(runnable.dag, provider=resolve(runnable.provider, settings),
                       executor=executor, settings=settings, pools=runnable.pools)
    if prepared.dag.operation == "protect":  # the others have no checkpoint to check against
        prepared.check_resources()
    with scratch_checkpoint(prepared) as checkpoint:
        return prepared.run(checkpoint)


@contextmanager
def scratch_checkpoint(prepared: Prepared) -> Iterator[Checkpoint | None]:
    """A checkpoint in a throw-away bank for the hooks of a prepared protect,
    removed with its bank when the block ends; ``None`` for the other operations."""
    dag = prepared.dag
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
            Plan(dag.plan or "run", ()), ResourceGraph.from_dag(dag), prepared.fingerprint,
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
