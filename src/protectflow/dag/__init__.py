"""The HookDAG model, its versioned JSON format and its DOT drawing."""

from protectflow.dag.model import HOOKS, OPERATIONS, RULES, HookDAG, HookEdge, HookNode, Resource

__all__ = ["HOOKS", "OPERATIONS", "RULES", "HookDAG", "HookEdge", "HookNode", "Resource"]
