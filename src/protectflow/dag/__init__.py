"""The HookDAG model, its versioned JSON format, its DOT drawing and GraphML
export; and the pure data a checkpoint keeps beside it: the plan, the
resource graph, and what a run says of its resources and hooks."""

from protectflow.dag.model import HOOKS, OPERATIONS, RULES, HookDAG, HookEdge, HookNode, Resource
from protectflow.dag.outcomes import ErrorInfo, ResourceStatus, StatusUpdate
from protectflow.dag.plan import Discovery, Plan, PlanResource
from protectflow.dag.resource_graph import ResourceGraph

__all__ = [
    "HOOKS",
    "OPERATIONS",
    "RULES",
    "Discovery",
    "ErrorInfo",
    "HookDAG",
    "HookEdge",
    "HookNode",
    "Plan",
    "PlanResource",
    "Resource",
    "ResourceGraph",
    "ResourceStatus",
    "StatusUpdate",
]
