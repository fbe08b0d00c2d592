"""A bank's listing: its keys in lexicographic order, one folder at a time.

Sorting a folder's name as ``name/`` puts its subtree exactly where its keys
fall in the order of full keys (``a-b`` < ``a/x``), so a walk yields keys in
order while reading only the folders a page needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from protectflow._paths import RESERVED, TEMP_PREFIX

__all__ = ["walk"]


def walk(backend: Any, rel: str, prefix: str, marker: str | None,
     reverse: bool) -> Iterator[str]:
    """Yield the keys under folder ``rel`` that start with ``prefix``, in
    order, after ``marker``; bank-internal names and temporary files skipped."""
    # Sorting a directory's name as 'name/' puts its subtree exactly where
    # its keys fall in the lexicographic order of full keys ('a-b' < 'a/x').
    entries = sorted(
        ((rel + name + ("/" if is_dir else ""), is_dir)
         for name, is_dir in backend.listdir(rel.rstrip("/"))
         if not name.startswith(TEMP_PREFIX)
         and not (rel == "" and (name + ("/" if is_dir else "")) in RESERVED)),
        reverse=reverse,
    )
    for path, is_dir in entries:
        if is_dir:
            if not (path.startswith(prefix) or prefix.startswith(path)):
                continue
            if marker is not None and _subtree_before_marker(path, marker, reverse):
                continue
            yield from walk(backend, path, prefix, marker, reverse)
        elif path.startswith(prefix) and (
            marker is None or (path < marker if reverse else path > marker)
        ):
            yield path


def _subtree_before_marker(directory: str, marker: str, reverse: bool) -> bool:
    """Whether every key under ``directory`` (ending in '/') is at or before
    ``marker`` in the listing order, so the walk may skip the directory."""
    if marker.startswith(directory):
        return False
    # Not a prefix of the marker: all keys under the directory compare to the
    # marker as the directory itself does.
    return directory > marker if reverse else directory < marker
