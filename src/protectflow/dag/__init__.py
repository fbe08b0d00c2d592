"""The HookDAG model, its versioned JSON format, its DOT drawing and GraphML export."""

from protectflow.dag.model import HOOKS, OPERATIONS, RULES, HookDAG, HookEdge, HookNode, Resource

__all__ = ["HOOKS", "OPERATIONS", "RULES", "HookDAG", "HookEdge", "HookNode", "Resource"]
