"""The fs manifest as the items ``ls``, ``find`` and ``diff`` read
(:class:`~protectflow.plugins.contents.Item`).

This is the one place that turns a manifest's entries into items: when the
manifest becomes typed classes, only this adapter changes.
"""

from __future__ import annotations

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
    # the chunk names themselves (no hash: ls of 100,000 files pays for each)
    sparse = entry.get("sparse")
    return "chunks:" + ",".join(map(str, chunks)) + (f"|{sparse}" if sparse else "")


def stored_size(entry: Mapping[str, Any]) -> int:
    """The bytes a restore of ``entry`` writes (its size; 0 for all but files)."""
    size = entry.get("size") if entry.get("type") == "file" else 0
    return size if isinstance(size, int) else 0


def items_of(manifest: Mapping[str, Any]) -> list[Item]:
    """Every entry of ``manifest`` as an item, in the manifest's order."""
    out = []
    for e in manifest.get("entries", ()):
        kind = str(e.get("type"))
        size, mode, mtime = e.get("size"), e.get("mode"), e.get("mtime_ns")
        out.append(Item(str(e.get("path")), kind,
                        size=size if kind == "file" and isinstance(size, int) else None,
                        mode=mode if isinstance(mode, int) else None,
                        mtime_ns=mtime if isinstance(mtime, int) else None,
                        content=_content(e) if kind == "file" else None,
                        target=e.get("target") if kind == "symlink" else None))
    return out
