"""Plan -> resource graph -> HookDAG: rules, schemas and checks."""

from protectflow.compiler.compile import compile_graph, compile_plan
from protectflow.compiler.graph import ResourceGraph, build_resource_graph
from protectflow.compiler.plan import Plan, PlanResource, load_plan, parse_plan

__all__ = [
    "Plan",
    "PlanResource",
    "ResourceGraph",
    "build_resource_graph",
    "compile_graph",
    "compile_plan",
    "load_plan",
    "parse_plan",
]
