"""The fs protect's reads: one scanned file into chunks, or a group of small
files into one pack -- each read as :mod:`._fsread` says (never through a
symlink, bounded by the scanned size, read again while it changes), and
what went wrong said as a warning rather than stored silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import attrs

from protectflow.plugins.builtin._chunkfiles import store_pieces
from protectflow.plugins.builtin._chunks import ChunkStore, sha256
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

__all__ = ["Stored", "read_group", "store_scanned"]

Entry = dict[str, Any]


@attrs.define
class Stored:
    """What storing one file or pack did."""

    new: int = 0
    new_bytes: int = 0
    #: Bytes read from the source (every read of a file that changed counts).
    read_bytes: int = 0
    reused: int = 0
    #: Chunks referenced by an earlier read of a file that then changed.
    discarded: list[str] = attrs.field(factory=list)
    warnings: list[str] = attrs.field(factory=list)


def store_scanned(store: ChunkStore, root: str, entry: Entry, chunk_size: int) -> Stored:
    """Chunk the scanned file ``entry`` into ``store``; sets its ``chunks``
    (and ``sparse``, its data extents, if it has holes), or ``vanished``."""
    opened = open_scanned(root, entry)
    if isinstance(opened, str):
        entry["vanished"] = True
        return Stored(warnings=[opened])
    fd, st = opened
    out = Stored()
    buffer = bytearray(chunk_size)
    try:
        for attempt in range(1, ATTEMPTS + 1):
            before = st if attempt == 1 else os.fstat(fd)
            size = min(entry["size"], before.st_size)
            extents = data_extents(fd, size) if entry.get("holes") else (
                [[0, size]] if size else [])
            digests, new, new_bytes, got = store_pieces(store, read_stream(fd, extents, buffer))
            out.new, out.new_bytes = out.new + new, out.new_bytes + new_bytes
            out.read_bytes += got
            if stat_key(os.fstat(fd)) == stat_key(before):
                break
            if attempt < ATTEMPTS:
                out.discarded += digests
            else:
                out.warnings.append(_changed(entry["path"]))
    finally:
        os.close(fd)
    out.warnings += _grown(entry, before)
    _record(entry, before, clip(extents, got), size if got == _total(extents) else None)
    entry["chunks"] = digests
    advance(0, 1)  # its bytes were counted as they were read
    return out


def _total(extents: Extents) -> int:
    return sum(length for _, length in extents)


def _record(entry: Entry, st: os.stat_result, extents: Extents, size: int | None) -> None:
    """Give ``entry`` the size, times and extents of the read it keeps
    (``size`` None: the file shrank during that read, it ends with its data)."""
    entry["size"] = size if size is not None else (
        extents[-1][0] + extents[-1][1] if extents else 0)
    entry["mtime_ns"], entry["ctime_ns"] = st.st_mtime_ns, st.st_ctime_ns
    if entry.get("holes") and extents != [[0, entry["size"]]]:
        entry["sparse"] = extents


def _changed(path: str) -> str:
    return (f"{path}: changed while it was read, {ATTEMPTS} times; the last read is "
            "stored and may be inconsistent")


def _grown(entry: Entry, st: os.stat_result) -> list[str]:
    if st.st_size > entry["size"]:
        return [f"{entry['path']}: grew from {entry['size']} to {st.st_size} bytes since the "
                f"scan; its first {entry['size']} bytes are stored"]
    return []


def read_group(root: str, group: list[Entry]) -> tuple[bytearray, list[str]]:
    """The files of ``group`` (small, not sparse) one after the other in one
    buffer; sets each one's ``offset``, ``length`` and ``sha256`` in it, or
    ``vanished``. Returns the buffer and the warnings."""
    pack = bytearray(sum(e["size"] for e in group))  # filled in place: no buffer per file
    used = 0
    warnings: list[str] = []
    for e in group:
        opened = open_scanned(root, e)
        if isinstance(opened, str):
            e["vanished"] = True
            warnings.append(opened)
            continue
        fd, st = opened
        try:
            got, st = _read_small(fd, st, e, pack, used, warnings)
        finally:
            os.close(fd)
        warnings += _grown(e, st)
        e.pop("chunks", None)
        e.update(offset=used, length=got, sha256=sha256(memoryview(pack)[used:used + got]))
        _record(e, st, [[0, got]] if got else [], got)
        used += got
        advance(got, 1)
    del pack[used:]
    return pack, warnings


def _read_small(fd: int, st: os.stat_result, entry: Entry, pack: bytearray, used: int,
                warnings: list[str]) -> tuple[int, os.stat_result]:
    """Read the open file ``entry`` into ``pack`` at ``used``, again while it
    changes; ``(bytes read, the stat before the read kept)``."""
    got = 0
    for attempt in range(1, ATTEMPTS + 1):
        before = st if attempt == 1 else os.fstat(fd)
        size = min(entry["size"], before.st_size)
        got = sum(len(piece) for piece in _into(fd, pack, used, size))
        if stat_key(os.fstat(fd)) == stat_key(before):
            break
        if attempt == ATTEMPTS:
            warnings.append(_changed(entry["path"]))
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
