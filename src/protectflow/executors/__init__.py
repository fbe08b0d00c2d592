"""Executors run a HookDAG: ``serial``, ``threads`` and ``dask``, one meaning.

All of them drive one scheduling loop and report a :class:`RunReport`;
nothing here imports dask (the dask executor does, when it is made).
"""

from protectflow.executors.base import Executor, available_executors, get_executor, run_dag
from protectflow.executors.invoke import OperationLog
from protectflow.executors.options import RunOptions
from protectflow.executors.report import Event, HookRecord, RunReport

__all__ = [
    "Event",
    "Executor",
    "HookRecord",
    "OperationLog",
    "RunOptions",
    "RunReport",
    "available_executors",
    "get_executor",
    "run_dag",
]
