"""Directory trees as manifests: scanning one (rebuilding one is
:mod:`._fsbuild`'s).

A manifest entry (version 3) is a dict: ``path`` (POSIX, relative to the
root, ``"."`` for the root itself), ``type`` (``dir``, ``file``,
``symlink``, ``fifo``, ``chr`` or ``blk``), ``mode`` (permission and set-id
bits), ``uid``/``gid`` (and ``user``/``group`` when the ids have names),
``mtime_ns``, ``atime_ns``, ``xattrs`` (name -> base64 value; POSIX ACLs are
the ``system.posix_acl_*`` ones) if any. Files add ``size``, their content
-- either ``chunks`` (digests of fixed-size pieces of their data; with
``sparse``, the ``[offset, length]`` data extents, the rest being holes) or,
for a small file packed with others, ``pack`` (the pack chunk's digest),
``offset``, ``length`` and ``sha256`` (of the file's bytes) -- and the
``ino``/``dev``/``ctime_ns`` the next protect compares to skip re-reading an
unchanged file. Symlinks add ``target`` (stored as a link, never followed),
devices ``rdev`` (``[major, minor]``). The second and later names of a hard
-linked inode have ``link``, the first name's path, and no content. Sockets
are skipped. Versions 1 and 2 lack owners, attributes, atimes, links,
special files and holes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from typing import Any

from protectflow.plugins.builtin.fs._meta import DIR_FLAGS, meta_of, open_quietly

__all__ = ["comparable", "scan", "selected"]

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


def _kind(st: os.stat_result) -> str | None:
    mode = st.st_mode
    for test, name in ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chr"), (stat.S_ISBLK, "blk")):
        if test(mode):
            return name
    return None  # a socket: nothing to restore (tar and rsync skip them too)


def _entry(rel: str, st: os.stat_result, kind: str, *, dir_fd: int, name: str,
           full: str) -> Entry:
    entry: Entry = {"path": rel, "type": kind,
                    **meta_of(st, dir_fd=dir_fd, name=name, full=full)}
    if kind == "file":
        entry.update(size=st.st_size, ino=st.st_ino, dev=st.st_dev, ctime_ns=st.st_ctime_ns)
        if st.st_blocks * 512 < st.st_size:
            entry["holes"] = True  # fewer blocks than bytes: read its data extents only
    elif kind in ("chr", "blk"):
        entry["rdev"] = [os.major(st.st_rdev), os.minor(st.st_rdev)]
    if kind != "dir" and st.st_nlink > 1:
        entry["_link_key"] = (st.st_dev, st.st_ino)
    return entry


def scan(root: str, include: Sequence[str] = (), exclude: Sequence[str] = (),
         skipped: Callable[[str, str], None] | None = None) -> list[Entry]:
    """The entries of the tree at ``root``, sorted by path, files without chunks.

    The walk goes through directory descriptors (any depth, no symlink
    followed). Of a group of hard links, the first path holds the data and
    the others name it in ``link``. ``skipped`` is told the path of every
    entry left out, and why.
    """
    root_fd = open_quietly(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.fstat(root_fd)
        entries: list[Entry] = [{"path": ".", "type": "dir",
                                 **meta_of(st, dir_fd=root_fd, name="", full=root)}]
        _walk(root_fd, "", entries, root=root, include=include, exclude=exclude,
              skipped=skipped or (lambda rel, why: None))
    finally:
        os.close(root_fd)
    entries.sort(key=lambda e: e["path"])
    _link_groups(entries)
    return entries


def _walk(fd: int, rel_dir: str, entries: list[Entry], *, root: str, include: Sequence[str],
          exclude: Sequence[str], skipped: Callable[[str, str], None]) -> None:
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
        entry = _entry(rel, st, kind, dir_fd=fd, name=item.name, full=os.path.join(root, rel))
        if kind == "symlink":
            entry["target"] = os.readlink(item.name, dir_fd=fd)
        entries.append(entry)
        if kind == "dir":
            try:
                sub = open_quietly(item.name, DIR_FLAGS, dir_fd=fd)
            except OSError as err:  # replaced by a link or removed since the listing
                entries.pop()
                skipped(rel, f"changed during the scan: {err.strerror}")
                continue
            try:
                _walk(sub, rel, entries, root=root, include=include, exclude=exclude,
                      skipped=skipped)
            finally:
                os.close(sub)


def _link_groups(entries: list[Entry]) -> None:
    """Hard links: the first (by path) of each group of names for one inode
    keeps its content; the others get ``link``, that first path."""
    first: dict[tuple[int, int], str] = {}
    for e in entries:
        key = e.pop("_link_key", None)
        if key is None:
            continue
        if key in first:
            e["link"] = first[key]
            for field in ("size", "holes"):
                e.pop(field, None)
        else:
            first[key] = e["path"]


def comparable(entries: Sequence[Entry]) -> list[tuple[Any, ...]]:
    """What a faithful restore preserves of each entry, for comparing trees
    (not the access time: reading a file may change it)."""
    return sorted(
        (e["path"], e["type"], None if e["type"] == "symlink" else e["mode"],
         e["mtime_ns"], e.get("size"), e.get("target"), e.get("uid"), e.get("gid"),
         tuple(sorted(e.get("xattrs", {}).items())), e.get("link"), tuple(e.get("rdev", ())))
        for e in entries
    )
