"""Directory trees as manifests: scanning one (rebuilding one is
:mod:`._build`'s); the entries are :mod:`._entries`' classes, files
without content until the protect reads them. Sockets are skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from protectflow.plugins.builtin.fs._entries import (
    DirEntry,
    Entry,
    FileEntry,
    HardLinkEntry,
    SpecialEntry,
    SymlinkEntry,
)
from protectflow.plugins.builtin.fs._meta import DIR_FLAGS, meta_of, open_quietly

__all__ = ["comparable", "scan", "selected"]

#: (device, inode) of an entry with more than one name.
LinkKey = tuple[int, int]


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


def _kind(st: os.stat_result) -> str | None:
    mode = st.st_mode
    for test, name in ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chr"), (stat.S_ISBLK, "blk")):
        if test(mode):
            return name
    return None  # a socket: nothing to restore (tar and rsync skip them too)


def _entry(rel: str, st: os.stat_result, kind: str, *, dir_fd: int, name: str,
           full: str) -> Entry:
    meta = meta_of(st, dir_fd=dir_fd, name=name, full=full)
    if kind == "file":
        # fewer blocks than bytes: holes, read by its data extents only
        return FileEntry(path=rel, meta=meta, size=st.st_size, ino=st.st_ino, dev=st.st_dev,
                         ctime_ns=st.st_ctime_ns, holes=st.st_blocks * 512 < st.st_size)
    if kind == "dir":
        return DirEntry(path=rel, meta=meta)
    if kind == "symlink":
        return SymlinkEntry(path=rel, meta=meta, target=os.readlink(name, dir_fd=dir_fd))
    rdev = (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind != "fifo" else None
    return SpecialEntry(path=rel, meta=meta, kind=kind, rdev=rdev)


def scan(root: str, include: Sequence[str] = (), exclude: Sequence[str] = (),
         skipped: Callable[[str, str], None] | None = None) -> list[Entry]:
    """The entries of the tree at ``root``, sorted by path, files without chunks.

    The walk goes through directory descriptors (any depth, no symlink
    followed). Of a group of hard links, the first path holds the data and
    the others name it in ``link``. ``skipped`` is told the path of every
    entry left out, and why.
    """
    root_fd = open_quietly(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    links: dict[str, LinkKey] = {}
    try:
        st = os.fstat(root_fd)
        entries: list[Entry] = [DirEntry(path=".",
                                         meta=meta_of(st, dir_fd=root_fd, name="", full=root))]
        _walk(root_fd, "", entries, links, root=root, include=include, exclude=exclude,
              skipped=skipped or (lambda rel, why: None))
    finally:
        os.close(root_fd)
    entries.sort(key=lambda e: e.path)
    return _link_groups(entries, links) if links else entries


def _walk(fd: int, rel_dir: str, entries: list[Entry], links: dict[str, LinkKey], *,
          root: str, include: Sequence[str], exclude: Sequence[str],
          skipped: Callable[[str, str], None]) -> None:
    with os.scandir(fd) as it:
        items = sorted(it, key=lambda e: e.name)
    for item in items:
        rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
        try:
            st = item.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone since the listing
        kind = _kind(st)
        if not selected(rel, kind == "dir", include, exclude):
            continue
        if kind is None:
            skipped(rel, "a socket")
            continue
        entries.append(_entry(rel, st, kind, dir_fd=fd, name=item.name,
                              full=os.path.join(root, rel)))
        if kind != "dir" and st.st_nlink > 1:
            links[rel] = (st.st_dev, st.st_ino)
        if kind == "dir":
            try:
                sub = open_quietly(item.name, DIR_FLAGS, dir_fd=fd)
            except OSError as err:  # replaced by a link or removed since the listing
                entries.pop()
                skipped(rel, f"changed during the scan: {err.strerror}")
                continue
            try:
                _walk(sub, rel, entries, links, root=root, include=include, exclude=exclude,
                      skipped=skipped)
            finally:
                os.close(sub)


def _link_groups(entries: list[Entry], links: dict[str, LinkKey]) -> list[Entry]:
    """Hard links: the first (by path) of each group of names for one inode
    keeps its content; the others become :class:`HardLinkEntry`, naming it."""
    first: dict[LinkKey, str] = {}
    out: list[Entry] = []
    for e in entries:
        key = links.get(e.path)
        if key is not None and key in first:
            ids = (e.ino, e.dev, e.ctime_ns) if isinstance(e, FileEntry) else (None,) * 3
            e = HardLinkEntry(path=e.path, meta=e.meta, kind=e.kind, link=first[key],
                              ino=ids[0], dev=ids[1], ctime_ns=ids[2])
        elif key is not None:
            first[key] = e.path
        out.append(e)
    return out


def comparable(entries: Sequence[Entry]) -> list[tuple[Any, ...]]:
    """What a faithful restore preserves of each entry, for comparing trees
    (not the access time: reading a file may change it)."""
    return sorted(
        (e.path, e.kind, None if e.kind == "symlink" else e.meta.mode, e.meta.mtime_ns,
         e.size if isinstance(e, FileEntry) else None,
         e.target if isinstance(e, SymlinkEntry) else None, e.meta.uid, e.meta.gid,
         e.meta.xattrs, e.link if isinstance(e, HardLinkEntry) else None,
         e.rdev or () if isinstance(e, SpecialEntry) else ())
        for e in entries
    )
