"""Which hooks travel with a hook as its chain (see ``run_loop``), and which
are out in a chain, handed over but not started yet.

A chain runs where its first hook runs, and all hooks of a resource run
where its first hook ran (they share one Operation, see
:mod:`protectflow.executors.instances`): so a chain takes in another
resource's hook only if none of that resource's hooks was handed over yet,
and then takes the resource with it.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Chains"]


class Chains:
    """The chains of one run.

    Parameters
    ----------
    length
        The most hooks one chain holds (1: no chains).
    succs, waiting, groups, rank
        The run's successors, unfinished-predecessor counts, limit groups
        and critical ranks, per node index (read, never written).
    eligible
        Whether a node may still be chained at all (not finished, not taken
        from an earlier run, its view needing no other predecessor).
    home
        Per node index, the (plugin, resource key) whose Operation it runs on.
    """

    def __init__(self, length: int, succs: list[list[int]], waiting: list[int],
                 groups: list[tuple[int, ...]], rank: list[int],
                 eligible: Callable[[int], bool], *,
                 home: list[tuple[str, str]]) -> None:
        self.length = max(1, length)
        self.succs, self.waiting, self.groups, self.rank = succs, waiting, groups, rank
        self.eligible, self.home = eligible, home
        self.claimed: set[int] = set()  # in a chain handed over, not started yet
        self.follower: dict[int, int] = {}  # hook -> the next hook of its chain
        self.homed: set[tuple[str, str]] = set()  # resources with a hook handed over

    def links(self, i: int) -> list[int]:
        """Claim the hooks to run after ``i`` where it runs, in order."""
        if self.length == 1:
            return []
        out: list[int] = []
        members = {self.home[i]}
        j: int | None = i
        while len(out) + 1 < self.length and j is not None:
            j = self._next(j, members)
            if j is not None:
                self.claimed.add(j)
                members.add(self.home[j])
                out.append(j)
        self.homed |= members
        return out

    def _next(self, i: int, members: set[tuple[str, str]]) -> int | None:
        """The most critical successor whose one unfinished predecessor is
        ``i``, with no limit, and whose resource is in the chain already
        (``members``) or has none of its hooks elsewhere, if any."""
        best: int | None = None
        for s in self.succs[i]:
            if (self.waiting[s] == 1 and not self.groups[s] and s not in self.claimed
                    and (self.home[s] in members or self.home[s] not in self.homed)
                    and self.eligible(s)
                    and (best is None or self.rank[s] < self.rank[best])):
                best = s
        if best is not None:
            self.follower[i] = best
        return best

    def started(self, i: int) -> None:
        """Claimed hook ``i`` started where its predecessor ran."""
        self.claimed.discard(i)

    def succeeded(self, i: int) -> int | None:
        """Hook ``i`` succeeded: the claimed hook its runner goes on to, if any."""
        j = self.follower.pop(i, None)
        return j if j is not None and j in self.claimed else None

    def stopped(self, i: int) -> None:
        """Hook ``i`` did not succeed: its chain stopped there."""
        j = self.follower.pop(i, None)
        while j is not None:
            self.claimed.discard(j)
            j = self.follower.pop(j, None)
