"""A readable summary of a HookDAG: sizes, roots, depth and the longest chain."""

from __future__ import annotations

from collections import Counter

from protectflow.dag.model import HookDAG

__all__ = ["longest_chain", "summary"]


def longest_chain(dag: HookDAG) -> list[str]:
    """The node ids of a longest path of hooks (ties broken by node order)."""
    succs = dag.successors()
    indegree = Counter(e.target for e in dag.edges)
    ready = [n.id for n in dag.nodes if indegree[n.id] == 0]
    length = {i: 1 for i in ready}
    best_pred: dict[str, str] = {}
    order = []
    while ready:
        nid = ready.pop()
        order.append(nid)
        for s in succs[nid]:
            if length[nid] + 1 > length.get(s, 0):
                length[s] = length[nid] + 1
                best_pred[s] = nid
            indegree[s] -= 1
            if indegree[s] == 0:
                ready.append(s)
    if not length:
        return []
    position = {n.id: i for i, n in enumerate(dag.nodes)}
    end = max(length, key=lambda i: (length[i], -position[i]))
    chain = [end]
    while chain[-1] in best_pred:
        chain.append(best_pred[chain[-1]])
    return chain[::-1]


def summary(dag: HookDAG) -> str:
    """The ``--format text`` output of ``protectflow compile``."""
    chain = longest_chain(dag)
    types = Counter(r.type for r in dag.resources)
    rules = Counter(e.rule for e in dag.edges)
    roots = dag.roots()
    lines = [
        f"plan:       {dag.plan}",
        f"operation:  {dag.operation}{' (pruned)' if dag.pruned else ''}",
        f"resources:  {len(dag.resources)}",
    ]
    lines += [f"  {t:<28} {c}" for t, c in sorted(types.items())]
    lines += [f"hooks:      {len(dag.nodes)}", f"edges:      {len(dag.edges)}"]
    lines += [f"  {r:<28} {rules[r]}" for r in sorted(rules)]
    shown = ", ".join(roots[:10]) + (f", ... ({len(roots)} in all)" if len(roots) > 10 else "")
    lines += [f"roots:      {shown}", f"depth:      {len(chain)} hooks", "longest chain:"]
    lines += [f"  {nid}" for nid in chain]
    return "\n".join(lines) + "\n"
