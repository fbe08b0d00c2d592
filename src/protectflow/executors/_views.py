"""What each hook sees in ``new_resources``: exactly what its ancestors wrote.

A node's view is the union, over its predecessors, of each predecessor's view
plus that predecessor's own writes. Views are computed by the scheduling loop
(where every predecessor's writes have arrived) and are never mutated once
made, so they are shared freely: a node with one predecessor that wrote
nothing gets that predecessor's very dict, and a no-op graph allocates
nothing but one empty dict. Only merges copy, once per node.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Views"]

_EMPTY: dict[str, Any] = {}


class Views:
    """The ``new_resources`` views of one run, built as nodes finish."""

    def __init__(self, preds: list[list[int]]) -> None:
        self.preds = preds
        self._view: dict[int, dict[str, Any]] = {}
        #: Node -> its view plus its own writes: what its successors inherit.
        self._out: dict[int, dict[str, Any]] = {}

    def view(self, i: int) -> dict[str, Any]:
        """The view of node ``i``, whose predecessors have all finished."""
        found = self._view.get(i)
        if found is None:
            found = self._view[i] = self._merge(i)
        return found

    def done(self, i: int, writes: dict[str, Any] | None) -> None:
        """Node ``i`` succeeded, having written ``writes``."""
        mine = self.view(i)
        self._out[i] = {**mine, **writes} if writes else mine

    def _merge(self, i: int) -> dict[str, Any]:
        preds = self.preds[i]
        if not preds:
            return _EMPTY
        first = self._out[preds[0]]
        if len(preds) == 1:
            return first
        merged: dict[str, Any] | None = None
        seen = {id(first)}
        for p in preds[1:]:
            other = self._out[p]
            if id(other) in seen or not other:
                continue
            seen.add(id(other))
            if merged is None:
                merged = dict(first)
            merged.update(other)
        return first if merged is None else merged
