"""Directory trees as manifests: scanning one, rebuilding one.

A manifest entry is a dict: ``path`` (POSIX, relative to the root, ``"."``
for the root itself), ``type`` (``dir``, ``file`` or ``symlink``), ``mode``
(permission bits), ``mtime_ns``; files add ``size``, their content -- either
``chunks`` (SHA-256 digests of fixed-size pieces) or, for a small file
packed with others, ``pack`` (the pack chunk's digest), ``offset``,
``length`` and ``sha256`` (of the file's bytes) -- and the ``ino``/
``ctime_ns`` the next protect compares to skip re-reading an unchanged file;
symlinks add ``target`` (stored as a link, never followed). Sockets, FIFOs and devices are skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatchcase
from typing import Any

from protectflow.errors import ChunkError
from protectflow.plugins._chunks import sha256

__all__ = ["build_tree", "comparable", "scan", "selected"]

Entry = dict[str, Any]


def selected(rel: str, is_dir: bool, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether the entry at ``rel`` is kept.

    A pattern without ``/`` matches an entry's name at any depth; one with
    ``/`` matches its path from the root (``*`` crosses ``/``). ``exclude``
    drops files and whole folders; ``include``, when given, keeps only the
    files (and links) that match it -- folders are always walked.
    """
    name = rel.rsplit("/", 1)[-1]

    def match(patterns: Sequence[str]) -> bool:
        return any(fnmatchcase(rel if "/" in p else name, p) for p in patterns)

    if match(exclude):
        return False
    return is_dir or not include or match(include)


def _entry(rel: str, st: os.stat_result) -> Entry:
    return {"path": rel, "mode": stat.S_IMODE(st.st_mode), "mtime_ns": st.st_mtime_ns}


def scan(root: str, include: Sequence[str] = (), exclude: Sequence[str] = (),
         skipped: Callable[[str], None] | None = None) -> list[Entry]:
    """The entries of the tree at ``root``, sorted by path, files without chunks.

    ``skipped`` is told the path of every special file left out.
    """
    st = os.stat(root)
    entries: list[Entry] = [{**_entry(".", st), "type": "dir"}]
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
            items = sorted(it, key=lambda e: e.name)
        for item in items:
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            st = item.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if not selected(rel, is_dir, include, exclude):
                continue
            if is_dir:
                entries.append({**_entry(rel, st), "type": "dir"})
                stack.append(rel)
            elif stat.S_ISREG(st.st_mode):
                entries.append({**_entry(rel, st), "type": "file", "size": st.st_size,
                                "ino": st.st_ino, "ctime_ns": st.st_ctime_ns})
            elif stat.S_ISLNK(st.st_mode):
                entries.append({**_entry(rel, st), "type": "symlink",
                                "target": os.readlink(item.path)})
            elif skipped is not None:
                skipped(rel)
    entries.sort(key=lambda e: e["path"])
    return entries


def comparable(entries: Sequence[Entry]) -> list[tuple[Any, ...]]:
    """What a faithful restore preserves of each entry, for comparing trees."""
    return sorted(
        (e["path"], e["type"], None if e["type"] == "symlink" else e["mode"],
         e["mtime_ns"], e.get("size"), e.get("target"))
        for e in entries
    )


def build_tree(dest: str, entries: Sequence[Entry], read_chunk: Callable[[str], bytes],
               *, workers: int = 4) -> None:
    """Recreate the tree of ``entries`` at ``dest``, which must not exist.

    Contents, modes, mtimes, symlinks and empty folders are restored; folder
    modes and times are set last, deepest first, so that writing their
    children neither fails (a read-only folder) nor changes their mtime.
    """
    os.mkdir(dest, 0o700)
    dirs = [e for e in entries if e["type"] == "dir" and e["path"] != "."]
    for e in dirs:  # sorted by path: parents come first
        os.mkdir(os.path.join(dest, e["path"]), 0o700)
    files = [e for e in entries if e["type"] == "file" and "pack" not in e]
    packs: dict[str, list[Entry]] = {}
    for e in entries:
        if e["type"] == "file" and "pack" in e:
            packs.setdefault(e["pack"], []).append(e)

    def write_pack(digest: str) -> None:  # one read of the pack for all its files
        view = memoryview(read_chunk(digest))
        for e in packs[digest]:
            piece = view[e["offset"]:e["offset"] + e["length"]]
            if len(piece) != e["length"] or sha256(piece) != e["sha256"]:
                raise ChunkError(f"{e['path']}: its bytes in pack {digest} do not match "
                                 "its hash")
            _write_file(dest, e, (piece,))

    def write_chunks(e: Entry) -> None:
        _write_file(dest, e, (read_chunk(digest) for digest in e["chunks"]))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(write_chunks, e) for e in files]
        jobs += [pool.submit(write_pack, digest) for digest in packs]
        for job in jobs:
            job.result()
    for e in entries:
        if e["type"] == "symlink":
            path = os.path.join(dest, e["path"])
            os.symlink(e["target"], path)
            os.utime(path, ns=(e["mtime_ns"], e["mtime_ns"]), follow_symlinks=False)
    for e in sorted((e for e in entries if e["type"] == "dir"),
                    key=lambda e: e["path"].count("/") + (e["path"] != "."), reverse=True):
        path = os.path.join(dest, e["path"]) if e["path"] != "." else dest
        os.chmod(path, e["mode"])
        os.utime(path, ns=(e["mtime_ns"], e["mtime_ns"]))


def _write_file(dest: str, entry: Entry, pieces: Iterable[bytes | memoryview]) -> None:
    path = os.path.join(dest, entry["path"])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        for piece in pieces:
            f.write(piece)
    os.chmod(path, entry["mode"])
    os.utime(path, ns=(entry["mtime_ns"], entry["mtime_ns"]))
