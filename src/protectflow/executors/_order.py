"""The orders and limits the scheduling loop works with: pure functions of
the DAG, computed once per run."""

from __future__ import annotations

import itertools

from protectflow.dag.model import HookDAG
from protectflow.executors.options import RunOptions

__all__ = ["critical_order", "limit_groups"]


def limit_groups(dag: HookDAG, options: RunOptions) -> tuple[list[tuple[int, ...]], list[int]]:
    """Per node, the limit groups it counts against; per group, its room.

    A limit names a resource type or a pool; a pool holds types and
    ``TYPE#ID`` keys.
    """
    limits = {**dag.limits, **options.limits}
    if not limits:
        return [()] * len(dag.nodes), []
    names = sorted(limits)
    room = [int(limits[name]) for name in names]
    by_member: dict[str, list[int]] = {}
    for g, name in enumerate(names):
        for member in itertools.chain((name,), options.pools.get(name, ())):
            by_member.setdefault(member, []).append(g)
    cache: dict[str, tuple[int, ...]] = {}
    groups: list[tuple[int, ...]] = []
    for n in dag.nodes:
        key = n.resource.key
        found = cache.get(key)
        if found is None:
            both = by_member.get(n.resource.type, []) + by_member.get(key, [])
            found = cache[key] = tuple(sorted(set(both)))
        groups.append(found)
    return groups, room




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
    by_rank = sorted(range(n), key=lambda i: i - level[i] * n)
    rank = [0] * n
    for r, i in enumerate(by_rank):
        rank[i] = r
    return rank, by_rank
