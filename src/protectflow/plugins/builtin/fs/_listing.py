"""The fs manifest as the items ``ls``, ``find`` and ``diff`` read
(:class:`~protectflow.plugins.contents.Item`).

This is the one place that turns a manifest's entries into items: when the
manifest becomes typed classes, only this adapter changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from protectflow.plugins.contents import Item

__all__ = ["items_of", "stored_size"]


def _content(entry: Mapping[str, Any]) -> str | None:
    """The identity of a file's data: the hash of its chunk names (and data
    extents), its packed bytes' sha256, or the path a hard link names."""
    if entry.get("link") is not None:
        return f"link:{entry['link']}"
    if "pack" in entry:
        return f"sha256:{entry.get('sha256')}"
    chunks = entry.get("chunks")
    if chunks is None:
        return None
    text = ",".join(map(str, chunks)) + "|" + repr(entry.get("sparse"))
    return "chunks:" + hashlib.sha256(text.encode()).hexdigest()


def stored_size(entry: Mapping[str, Any]) -> int:
    """The bytes a restore of ``entry`` writes (its size; 0 for all but files)."""
    size = entry.get("size") if entry.get("type") == "file" else 0
    return size if isinstance(size, int) else 0


def items_of(manifest: Mapping[str, Any]) -> list[Item]:
    """Every entry of ``manifest`` as an item, in the manifest's order."""
    out = []
    for e in manifest.get("entries", ()):
        kind = str(e.get("type"))
        size = e.get("size") if kind == "file" else None
        out.append(Item(str(e.get("path")), kind,
                        size=size if isinstance(size, int) else None,
                        mode=e.get("mode") if isinstance(e.get("mode"), int) else None,
                        mtime_ns=e.get("mtime_ns") if isinstance(e.get("mtime_ns"), int) else None,
                        content=_content(e) if kind == "file" else None,
                        target=e.get("target") if kind == "symlink" else None))
    return out
