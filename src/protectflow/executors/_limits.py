"""Limits: the most hooks running at once per resource type or pool.

A hook counts against every limit group that names its type, its
``TYPE#ID`` key, or a pool holding either. A hook whose group is full is
parked, never handed to a thread that would wait on a lock: it goes back to
the ready queue when a hook of that group finishes.
"""

from __future__ import annotations

import heapq
import itertools

from protectflow.dag.model import HookDAG
from protectflow.executors.options import RunOptions

__all__ = ["Limits", "limit_groups"]


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


class Limits:
    """The limit groups of one run: per node, its groups; per group, its room
    left and its parked hooks (as ranks, most critical first)."""

    def __init__(self, dag: HookDAG, options: RunOptions) -> None:
        self.groups, self.room = limit_groups(dag, options)
        self.parked: list[list[int]] = [[] for _ in self.room]

    def admit(self, i: int, rank: int) -> bool:
        """Take room for hook ``i`` in each of its groups, or park it (by its
        ``rank``) in the first that is full and return False."""
        groups = self.groups[i]
        if not groups:
            return True
        room = self.room
        full = next((g for g in groups if room[g] <= 0), None)
        if full is not None:
            heapq.heappush(self.parked[full], rank)
            return False
        for g in groups:
            room[g] -= 1
        return True

    def release(self, i: int, ready: list[int]) -> None:
        """Hook ``i`` is done: give its room back, and move one hook parked
        in each of its groups onto the ``ready`` heap."""
        for g in self.groups[i]:
            self.room[g] += 1
            parked = self.parked[g]
            if parked:
                heapq.heappush(ready, heapq.heappop(parked))
