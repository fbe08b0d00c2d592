"""The graph and the order the scheduling loop works with: pure functions of
the DAG, computed once per run."""

from __future__ import annotations

from protectflow.dag.model import HookDAG

__all__ = ["adjacency", "critical_order"]


def adjacency(dag: HookDAG) -> tuple[dict[str, int], list[list[int]], list[list[int]]]:
    """Node id -> index, and per node index its predecessors and successors."""
    index = {n.id: i for i, n in enumerate(dag.nodes)}
    preds: list[list[int]] = [[] for _ in dag.nodes]
    succs: list[list[int]] = [[] for _ in dag.nodes]
    for e in dag.edges:
        s, t = index[e.source], index[e.target]
        preds[t].append(s)
        succs[s].append(t)
    return index, preds, succs


def critical_order(preds: list[list[int]], succs: list[list[int]]) -> tuple[list[int], list[int]]:
    """Node -> rank and rank -> node, most critical first.

    A node's criticality is its bottom level: the most hooks on a path from
    it to a sink, itself included. Starting the longest chains first keeps
    every worker busy to the end instead of leaving one chain to run alone
    (list scheduling's critical-path rule); ties go to the lowest node index,
    so the order is total and the same in every run.
    """
    n = len(succs)
    level = [1] * n
    left = [len(s) for s in succs]
    stack = [i for i in range(n) if not left[i]]
    while stack:  # sinks first, each node once all its successors are known
        i = stack.pop()
        up = level[i] + 1
        for p in preds[i]:
            if up > level[p]:
                level[p] = up
            left[p] -= 1
            if not left[p]:
                stack.append(p)
    keys = [i - level[i] * n for i in range(n)]
    by_rank = sorted(range(n), key=keys.__getitem__)
    rank = [0] * n
    for r, i in enumerate(by_rank):
        rank[i] = r
    return rank, by_rank
