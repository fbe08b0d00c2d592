"""The executor protocol, the executors' entry points and :func:`run_dag`."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import attrs

from protectflow.dag.model import HookDAG
from protectflow.errors import ExecutorError, MissingDependencyError
from protectflow.executors.options import RunOptions
from protectflow.executors.report import RunReport

__all__ = ["EXECUTORS", "Executor", "available_executors", "get_executor", "run_dag"]

#: The entry-point group executors are registered in, built-ins included.
EXECUTORS = "protectflow.executors"

_RUN_OPTIONS = frozenset(f.name for f in attrs.fields(RunOptions))


@runtime_checkable
class Executor(Protocol):
    """Runs a HookDAG and reports on every hook; never raises for a hook's
    failure (the report says)."""

    name: str

    def run(self, dag: HookDAG, options: RunOptions | None = None) -> RunReport: ...


def available_executors() -> list[str]:
    """The names of the installed executors, sorted."""
    return sorted({ep.name for ep in entry_points(group=EXECUTORS)})


def get_executor(name: str, **options: Any) -> Executor:
    """The executor registered as ``name``, made with ``options`` (``workers``,
    ``scheduler``...).

    Raises
    ------
    ExecutorError
        When no executor has that name, or it rejects ``options``.
    MissingDependencyError
        When the executor needs a package that is not installed.
    """
    found = [ep for ep in entry_points(group=EXECUTORS) if ep.name == name]
    if not found:
        raise ExecutorError(
            f"unknown executor {name!r}; available: {', '.join(available_executors())}"
        )
    try:
        cls = found[0].load()
    except MissingDependencyError:
        raise
    except ImportError as err:
        raise ExecutorError(f"executor {name!r} ({found[0].value}) failed to load: {err}") from err
    try:
        executor: Executor = cls(**options)
    except TypeError as err:
        raise ExecutorError(f"executor {name!r} does not take these options: {err}") from err
    return executor


def run_dag(dag: HookDAG, executor: str | Executor = "threads", **options: Any) -> RunReport:
    """Run ``dag`` and return its report; a hook's failure raises nothing.

    ``options`` are :class:`RunOptions` fields (``keep_going``, ``retries``,
    ``timeout``, ``limits``, ``listeners``, ``cancel``...); the rest go to the
    executor (``workers``, ``scheduler``, ``client``).

    Raises
    ------
    ExecutorError, MissingDependencyError
        As :func:`get_executor`, or for bad options.
    """
    run_opts = {k: v for k, v in options.items() if k in _RUN_OPTIONS}
    exec_opts = {k: v for k, v in options.items() if k not in _RUN_OPTIONS}
    if isinstance(executor, str):
        executor = get_executor(executor, **exec_opts)
    elif exec_opts:
        raise ExecutorError(
            f"unknown run options: {', '.join(sorted(exec_opts))}; executor options "
            "(workers, scheduler...) go with an executor name, not an executor object"
        )
    return executor.run(dag, RunOptions(**run_opts))
