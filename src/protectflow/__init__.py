"""protectflow: protect, restore, verify, copy and delete the data of a graph
of resources through protection plugins.

A plan compiles into a :class:`HookDAG` (pure data: JSON, DOT) that an executor
(serial, threads or dask) runs. Nothing heavy is imported here.
"""

from protectflow.compiler import Plan, compile_graph, compile_plan, load_plan, parse_plan
from protectflow.dag import HookDAG, HookEdge, HookNode, Resource
from protectflow.errors import (
    CycleError,
    DagFormatError,
    ParameterError,
    PlanError,
    PluginError,
    ProtectflowError,
    RunFailed,
)
from protectflow.plugins import Operation, Protectable, ProtectionPlugin, Registry

__version__ = "0.1.0"

__all__ = [
    "CycleError",
    "DagFormatError",
    "HookDAG",
    "HookEdge",
    "HookNode",
    "Operation",
    "ParameterError",
    "Plan",
    "PlanError",
    "PluginError",
    "Protectable",
    "ProtectflowError",
    "ProtectionPlugin",
    "Registry",
    "Resource",
    "RunFailed",
    "compile_graph",
    "compile_plan",
    "load_plan",
    "parse_plan",
]
