"""The fs manifest as the items ``ls``, ``find`` and ``diff`` read
(:class:`~protectflow.plugins.contents.Item`): the one place that turns a
manifest's entries into items.
"""

from __future__ import annotations

from protectflow.plugins.builtin.fs._entries import (
    DirEntry,
    Entry,
    FileEntry,
    HardLinkEntry,
    SymlinkEntry,
)
from protectflow.plugins.builtin.fs._manifest import Manifest
from protectflow.plugins.contents import Item

__all__ = ["item_of", "items_of"]


def _content(entry: FileEntry) -> str | None:
    """The identity of a file's data: its packed bytes' sha256, or its chunk
    names themselves (no hash: ``ls`` of 100,000 files pays for each)."""
    if entry.pack is not None:
        return f"sha256:{entry.pack.sha256}"
    if entry.chunks is None:
        return None
    sparse = f"|{entry.sparse}" if entry.sparse else ""
    return "chunks:" + ",".join(entry.chunks) + sparse


def item_of(e: Entry) -> Item:
    """One manifest entry as an item."""
    meta = e.meta
    if isinstance(e, FileEntry):
        return Item(e.path, "file", size=e.size, mode=meta.mode, mtime_ns=meta.mtime_ns,
                    content=_content(e))
    if isinstance(e, HardLinkEntry):  # a second name: the data is the first name's
        return Item(e.path, e.kind, mode=meta.mode, mtime_ns=meta.mtime_ns,
                    content=f"link:{e.link}")
    if isinstance(e, SymlinkEntry):
        return Item(e.path, "symlink", mode=meta.mode, mtime_ns=meta.mtime_ns, target=e.target)
    kind = "dir" if isinstance(e, DirEntry) else e.kind
    return Item(e.path, kind, mode=meta.mode, mtime_ns=meta.mtime_ns)


def items_of(manifest: Manifest) -> list[Item]:
    """Every entry of ``manifest`` as an item, in the manifest's order."""
    return [item_of(e) for e in manifest]
