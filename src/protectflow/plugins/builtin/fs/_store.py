"""The fs protect's reads: one scanned file into chunks, or a group of small
files into one pack -- each read as :mod:`._fsread` says (never through a
symlink, bounded by the scanned size, read again while it changes), and
what went wrong said as a warning rather than stored silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import attrs

from protectflow.plugins.builtin._chunkfiles import store_pieces
from protectflow.plugins.builtin._chunks import ChunkStore, sha256
from protectflow.plugins.builtin.fs._entries import FileEntry, Packed
from protectflow.plugins.builtin.fs._read import (
    ATTEMPTS,
    Extents,
    clip,
    data_extents,
    open_scanned,
    read_stream,
    stat_key,
)
from protectflow.plugins.progress import advance

__all__ = ["Read", "Stored", "read_group", "store_scanned"]


@attrs.define
class Stored:
    """What storing one file or pack did: the files' entries with their
    content (those gone since the scan left out), and counts."""

    new: int = 0
    new_bytes: int = 0
    #: Bytes read from the source (every read of a file that changed counts).
    read_bytes: int = 0
    reused: int = 0
    entries: list[FileEntry] = attrs.field(factory=list)
    #: Chunks referenced by an earlier read of a file that then changed.
    discarded: list[str] = attrs.field(factory=list)
    warnings: list[str] = attrs.field(factory=list)


def store_scanned(store: ChunkStore, root: str, entry: FileEntry, chunk_size: int) -> Stored:
    """Chunk the scanned file ``entry`` into ``store``: its entry with its
    ``chunks`` (and ``sparse``, its data extents, if it has holes), or none
    if it vanished."""
    opened = open_scanned(root, entry)
    if isinstance(opened, str):
        return Stored(warnings=[opened])
    fd, st = opened
    out = Stored()
    buffer = bytearray(chunk_size)
    try:
        for attempt in range(1, ATTEMPTS + 1):
            before = st if attempt == 1 else os.fstat(fd)
            size = min(entry.size, before.st_size)
            extents = data_extents(fd, size) if entry.holes else (
                [[0, size]] if size else [])
            digests, new, new_bytes, got = store_pieces(store, read_stream(fd, extents, buffer))
            out.new, out.new_bytes = out.new + new, out.new_bytes + new_bytes
            out.read_bytes += got
            if stat_key(os.fstat(fd)) == stat_key(before):
                break
            if attempt < ATTEMPTS:
                out.discarded += digests
            else:
                out.warnings.append(_changed(entry.path))
    finally:
        os.close(fd)
    out.warnings += _grown(entry, before)
    out.entries.append(_record(entry, before, clip(extents, got),
                               size if got == _total(extents) else None, chunks=digests))
    advance(0, 1)  # its bytes were counted as they were read
    return out


def _total(extents: Extents) -> int:
    return sum(length for _, length in extents)


def _record(entry: FileEntry, st: os.stat_result, extents: Extents, size: int | None, *,
            chunks: list[str] | None = None, pack: Packed | None = None) -> FileEntry:
    """``entry`` with the size, times and extents of the read it keeps
    (``size`` None: the file shrank during that read, it ends with its data),
    and its content."""
    if size is None:
        size = extents[-1][0] + extents[-1][1] if extents else 0
    sparse = None
    if entry.holes and extents != [[0, size]]:
        sparse = tuple((offset, length) for offset, length in extents)
    meta = entry.meta  # built again only when the file changed since the scan
    if meta.mtime_ns != st.st_mtime_ns:
        meta = attrs.evolve(meta, mtime_ns=st.st_mtime_ns)
    # not attrs.evolve: a first protect makes one per file, 100,000 in a tree
    return FileEntry(path=entry.path, meta=meta, size=size, ino=entry.ino, dev=entry.dev,
                     ctime_ns=st.st_ctime_ns, sparse=sparse, pack=pack,
                     chunks=None if chunks is None else tuple(chunks))


def _changed(path: str) -> str:
    return (f"{path}: changed while it was read, {ATTEMPTS} times; the last read is "
            "stored and may be inconsistent")


def _grown(entry: FileEntry, st: os.stat_result) -> list[str]:
    if st.st_size > entry.size:
        return [f"{entry.path}: grew from {entry.size} to {st.st_size} bytes since the "
                f"scan; its first {entry.size} bytes are stored"]
    return []


@attrs.frozen
class Read:
    """One file of a pack as read: its entry, the stat of the read kept,
    and where its bytes are in the pack."""

    entry: FileEntry
    st: os.stat_result
    offset: int
    length: int
    sha256: str

    def packed(self, digest: str) -> FileEntry:
        """Its entry, its bytes at their place in the pack ``digest``."""
        return _record(self.entry, self.st, [[0, self.length]] if self.length else [],
                       self.length, pack=Packed(digest, self.offset, self.length, self.sha256))


def read_group(root: str, group: list[FileEntry]) -> tuple[bytearray, list[Read], list[str]]:
    """The files of ``group`` (small, not sparse) one after the other in one
    buffer; returns it, where each file's bytes are in it (not the files
    gone since the scan), and the warnings."""
    pack = bytearray(sum(e.size for e in group))  # filled in place: no buffer per file
    used = 0
    reads: list[Read] = []
    warnings: list[str] = []
    for e in group:
        opened = open_scanned(root, e)
        if isinstance(opened, str):
            warnings.append(opened)
            continue
        fd, st = opened
        try:
            got, st = _read_small(fd, st, e, pack, used, warnings)
        finally:
            os.close(fd)
        warnings += _grown(e, st)
        reads.append(Read(e, st, used, got, sha256(memoryview(pack)[used:used + got])))
        used += got
        advance(got, 1)
    del pack[used:]
    return pack, reads, warnings


def _read_small(fd: int, st: os.stat_result, entry: FileEntry, pack: bytearray, used: int,
                warnings: list[str]) -> tuple[int, os.stat_result]:
    """Read the open file ``entry`` into ``pack`` at ``used``, again while it
    changes; ``(bytes read, the stat before the read kept)``."""
    got = 0
    for attempt in range(1, ATTEMPTS + 1):
        before = st if attempt == 1 else os.fstat(fd)
        size = min(entry.size, before.st_size)
        got = sum(len(piece) for piece in _into(fd, pack, used, size))
        if stat_key(os.fstat(fd)) == stat_key(before):
            break
        if attempt == ATTEMPTS:
            warnings.append(_changed(entry.path))
    return got, before


def _into(fd: int, pack: bytearray, used: int, size: int) -> Iterator[memoryview]:
    """Read the first ``size`` bytes of ``fd`` into ``pack[used:]``."""
    view = memoryview(pack)[used:used + size]
    offset = 0
    while offset < size:
        got = os.preadv(fd, [view[offset:]], offset)
        if not got:
            break
        yield view[offset:offset + got]
        offset += got
