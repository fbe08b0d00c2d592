"""Rebuilding a tree from a manifest, confined to a private staging folder.

A manifest comes from the bank: untrusted. :func:`check_entries` refuses
(never cleans) any path that is absolute, empty, holds NUL, ``.`` or ``..``
components, or goes through an entry that is not a folder of the same
manifest -- all before anything is written. :func:`build` then creates every
entry relative to directory descriptors, each name created exclusively and
without following symlinks (``O_CREAT | O_EXCL | O_NOFOLLOW``, ``mkdir``,
``symlink``, ``mknod`` with ``dir_fd``), inside a staging folder the caller
made private (0700) and exclusive (``tempfile.mkdtemp``).

Exact like ``tar -p --xattrs --acls -S``: modes, times (access and
modification, in nanoseconds), extended attributes (POSIX ACLs included),
owners (as root, or when asked; set-id bits only then), hard links, sparse
files (holes left as holes: data written at its offsets, then truncated to
size), FIFOs, and devices (as root; otherwise reported as skipped).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from protectflow.errors import ChunkError, LocalPluginError
from protectflow.plugins.builtin._chunks import sha256
from protectflow.plugins.builtin.fs._meta import DirStack, apply_meta, split
from protectflow.plugins.progress import advance

__all__ = ["Outcome", "build", "check_entries"]

Entry = dict[str, Any]
#: A chunk's bytes by digest: a view that may be valid only until the calling
#: thread's next call (:meth:`ChunkStore.reader` reuses its buffers).
ReadChunk = Callable[[str], bytes | memoryview]
#: Flags creating a file: exclusive, never through a symlink.
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TYPES = frozenset(("dir", "file", "symlink", "fifo", "chr", "blk"))
_DIGEST = re.compile(r"[0-9a-f]{16,128}")
#: The most bytes given to one ``pwrite(2)``: a 4 MiB write into a new file
#: cost several times the kernel time of the same bytes in 1 MiB writes here
#: (Linux 6, ext4: the page cache's allocation for a large write).
_WRITE_MAX = 1 << 20


class Outcome:
    """What a restore could not do exactly: entries skipped, attributes not
    set; shown in the hook's output and log."""

    def __init__(self) -> None:
        self.skipped: list[str] = []
        self.warnings: list[str] = []


# -- checking a manifest before writing anything --------------------------------------
def check_entries(entries: Any, what: str) -> None:
    """Refuse a manifest whose paths could leave the restore's folder.

    Raises
    ------
    LocalPluginError
        Naming every problem (the first ten).
    """
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise LocalPluginError(f"{what}: the manifest's entries are not a list of objects")
    problems: list[str] = []
    kinds: dict[str, str] = {".": "dir"}
    for e in entries:
        problem = _path_problem(e.get("path"), e.get("type"), kinds)
        if problem is None:
            problem = _entry_problem(e, kinds)
        if problem is not None:
            problems.append(f"{e.get('path')!r}: {problem}")
        elif e["path"] != ".":
            kinds[e["path"]] = e["type"]
    if not any(e.get("path") == "." and e.get("type") == "dir" for e in entries):
        problems.append("no root folder entry '.'")
    if problems:
        raise LocalPluginError(f"{what}: the manifest is refused, nothing was written: "
                               + "; ".join(problems[:10])
                               + (f"; and {len(problems) - 10} more" if len(problems) > 10
                                  else ""))


def _path_problem(path: Any, kind: Any, kinds: dict[str, str]) -> str | None:
    if not isinstance(path, str) or not path:
        return "not a path"
    if path == ".":
        return None if kind == "dir" else "the root is not a folder"
    if "\0" in path or path.startswith("/"):
        return "an absolute path or one holding NUL"
    parts = path.split("/")
    if ".." in parts:  # said for what it is, never left to mkdir's EEXIST
        return "a '..' component: a stored path may not climb out of its folder"
    if "" in parts or "." in parts:
        return "an empty or '.' component"
    if path in kinds:
        return "a duplicate path"
    parent = split(path)[0] or "."
    if kinds.get(parent) != "dir":
        return "its folder is not a folder listed before it (a symlink on the way?)"
    return None


def _entry_problem(e: Entry, kinds: dict[str, str]) -> str | None:
    kind = e.get("type")
    if kind not in _TYPES:
        return f"unknown type {kind!r}"
    if not _ints(e, "mode", "mtime_ns") or not 0 <= e["mode"] <= 0o7777:
        return "no valid mode or mtime"
    if "link" in e:
        return None if kinds.get(e["link"]) == kind and kind != "dir" else (
            "a hard link to no earlier entry of its type")
    if kind == "symlink" and not (isinstance(e.get("target"), str) and e["target"]
                                  and "\0" not in e["target"]):
        return "a symlink without a valid target"
    if kind in ("chr", "blk") and not (isinstance(e.get("rdev"), list) and len(e["rdev"]) == 2
                                       and all(isinstance(n, int) for n in e["rdev"])):
        return "a device without a valid number"
    if kind == "file":
        return _content_problem(e)
    return None


def _content_problem(e: Entry) -> str | None:
    if not _ints(e, "size") or e["size"] < 0:
        return "no valid size"
    if "pack" in e:
        ok = (_digest(e["pack"]) and _ints(e, "offset", "length")
              and isinstance(e.get("sha256"), str))
        return None if ok else "a packed file without a valid slice"
    if not isinstance(e.get("chunks"), list) or not all(_digest(d) for d in e["chunks"]):
        return "no valid chunk list"
    extents = e.get("sparse")
    if extents is not None and not _extents_ok(extents, e["size"]):
        return "invalid data extents"
    return None


def _extents_ok(extents: Any, size: int) -> bool:
    end = 0
    for ext in extents if isinstance(extents, list) else [None]:
        if not (isinstance(ext, list) and len(ext) == 2 and all(isinstance(n, int) for n in ext)
                and ext[0] >= end and ext[1] > 0):
            return False
        end = ext[0] + ext[1]
    return end <= size


def _ints(e: Entry, *keys: str) -> bool:
    return all(isinstance(e.get(k), int) and not isinstance(e.get(k), bool) for k in keys)


def _digest(value: Any) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


# -- building ------------------------------------------------------------------------
def build(root_fd: int, entries: Sequence[Entry], read_chunk: ReadChunk, *, owners: bool,
          workers: int = 4) -> Outcome:
    """Recreate the checked ``entries`` in the empty folder ``root_fd``.

    Folders first (0700 while they fill), then file contents (in parallel),
    then links, FIFOs and devices, hard links, and last the folders' own
    metadata, deepest first, so that writing their children neither fails (a
    read-only folder) nor changes their times.

    Raises
    ------
    ChunkError
        If a chunk is missing or corrupt.
    """
    outcome = Outcome()
    with DirStack(root_fd) as dirs:
        for e in entries:
            if e["type"] == "dir" and e["path"] != ".":
                parent, name = split(e["path"])
                os.mkdir(name, 0o700, dir_fd=dirs.fd_of(parent))
    _write_files(root_fd, entries, read_chunk, owners=owners, workers=workers,
                 outcome=outcome)
    with DirStack(root_fd) as dirs:
        for e in entries:
            if e["type"] not in ("dir", "file") or "link" in e:
                _make_other(dirs, e, owners=owners, outcome=outcome)
        for e in entries:
            if "link" not in e:
                continue
            if e["link"] in outcome.skipped:  # a device this process may not make
                outcome.skipped.append(e["path"])
            else:
                _hard_link(dirs, root_fd, e)
    for e in sorted((e for e in entries if e["type"] == "dir"),
                    key=lambda e: -(e["path"].count("/") + (e["path"] != "."))):
        fd = _open_dir(root_fd, e["path"])
        try:
            outcome.warnings += apply_meta(e, fd=fd, owners=owners)
        finally:
            os.close(fd)
    return outcome


def _open_dir(root_fd: int, rel: str) -> int:
    with DirStack(root_fd) as dirs:
        return os.dup(dirs.fd_of(rel if rel != "." else ""))


def _make_other(dirs: DirStack, e: Entry, *, owners: bool, outcome: Outcome) -> None:
    """A symlink, FIFO or device (not a hard link: those come after)."""
    if "link" in e:
        return
    parent, name = split(e["path"])
    fd = dirs.fd_of(parent)
    kind = e["type"]
    if kind == "symlink":
        os.symlink(e["target"], name, dir_fd=fd)
    elif kind == "fifo":
        os.mkfifo(name, 0o600, dir_fd=fd)
    elif os.geteuid() == 0:
        devtype = stat.S_IFCHR if kind == "chr" else stat.S_IFBLK
        os.mknod(name, 0o600 | devtype, os.makedev(*e["rdev"]), dir_fd=fd)
    else:
        outcome.skipped.append(e["path"])
        return
    outcome.warnings += apply_meta(e, dir_fd=fd, name=name, owners=owners)


def _hard_link(dirs: DirStack, root_fd: int, e: Entry) -> None:
    leader_parent, leader_name = split(e["link"])
    source_fd = _open_dir(root_fd, leader_parent)
    try:
        parent, name = split(e["path"])
        os.link(leader_name, name, src_dir_fd=source_fd, dst_dir_fd=dirs.fd_of(parent),
                follow_symlinks=False)
    finally:
        os.close(source_fd)


def _write_files(root_fd: int, entries: Sequence[Entry], read_chunk: ReadChunk, *,
                 owners: bool, workers: int, outcome: Outcome) -> None:
    files = [e for e in entries if e["type"] == "file" and "link" not in e]
    packs: dict[str, list[Entry]] = {}
    for e in files:
        if "pack" in e:
            packs.setdefault(e["pack"], []).append(e)

    def write_pack(digest: str) -> list[str]:  # one read of the pack for all its files
        view = memoryview(read_chunk(digest))
        problems: list[str] = []
        with DirStack(root_fd) as dirs:
            for e in packs[digest]:
                piece = view[e["offset"]:e["offset"] + e["length"]]
                if len(piece) != e["length"] or sha256(piece) != e["sha256"]:
                    raise ChunkError(f"{e['path']}: its bytes in pack {digest} do not match "
                                     "its hash")
                problems += _write_file(dirs, e, (piece,), owners=owners)
        return problems

    def write_chunks(e: Entry) -> list[str]:
        with DirStack(root_fd) as dirs:
            return _write_file(dirs, e, (read_chunk(d) for d in e["chunks"]), owners=owners)

    def write_packs() -> list[str]:
        return [problem for digest in packs for problem in write_pack(digest)]

    # Packs (small files) in one thread, started first: their work is
    # system calls, several per file, and threads doing those at once mostly
    # hand the GIL to each other (a 100,000-file tree: 6.6-6.9 s on four
    # threads, 4.7 s on one). Large files share the other threads.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(write_packs)] if packs else []
        jobs += [pool.submit(write_chunks, e) for e in files if "pack" not in e]
        for job in jobs:
            outcome.warnings += job.result()


def _write_file(dirs: DirStack, entry: Entry, pieces: Iterable[bytes | memoryview], *,
                owners: bool) -> list[str]:
    parent, name = split(entry["path"])
    fd = os.open(name, CREATE_FLAGS, 0o600, dir_fd=dirs.fd_of(parent))
    try:
        written = _write_extents(fd, entry, _counted(pieces))
        advance(0, 1)
        if written > entry["size"]:
            raise ChunkError(f"{entry['path']}: its chunks hold more bytes than its size")
        os.ftruncate(fd, entry["size"])  # the holes at the end of a sparse file
        return apply_meta(entry, fd=fd, owners=owners)
    finally:
        os.close(fd)


def _counted(pieces: Iterable[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """``pieces``, each told to the run's progress as it is written."""
    for piece in pieces:
        yield piece
        advance(len(piece))


def _write_extents(fd: int, entry: Entry, pieces: Iterable[bytes | memoryview]) -> int:
    """Write the data stream at the entry's data extents (the whole file if it
    has none), leaving the gaps as holes; returns the end of the last write."""
    extents = entry.get("sparse") or [[0, entry["size"]]]
    index, offset, left = 0, extents[0][0], extents[0][1]
    end = 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            if index >= len(extents):
                raise ChunkError(f"{entry['path']}: its chunks hold more bytes than its "
                                 "data extents")
            n = min(left, len(view), _WRITE_MAX)
            written = os.pwrite(fd, view[:n], offset)
            view, offset, left = view[written:], offset + written, left - written
            end = max(end, offset)
            if left == 0 and index + 1 < len(extents):
                index += 1
                offset, left = extents[index]
            elif left == 0:
                index += 1
    return end
