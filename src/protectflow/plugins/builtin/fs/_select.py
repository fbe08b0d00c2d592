"""A restore of part of a tree: the manifest's entries an ``include`` /
``exclude`` pair of globs keeps (as restic's ``restore --include``), and
what a restore in place would overwrite.

Patterns match as the protect's: without ``/`` the name at any depth, with
``/`` the path from the root. ``exclude`` drops an entry and everything
under a folder it matches; ``include``, when given, keeps the entries that
match and everything under a folder that matches, with the folders that
lead to them. A hard link whose first name is left out takes that name's
content, so that what is kept restores whole.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from protectflow.dag.model import Resource
from protectflow.errors import LocalPluginError
from protectflow.plugins.builtin._local import (
    in_place_source,
    restore_destination,
)
from protectflow.plugins.builtin.fs._entries import (
    DirEntry,
    Entry,
    FileEntry,
    HardLinkEntry,
    SymlinkEntry,
)
from protectflow.plugins.builtin.fs._manifest import Manifest
from protectflow.plugins.builtin.fs._meta import open_dir, split
from protectflow.plugins.contents import selected_paths

__all__ = ["collisions", "destination", "refuse_overwrites", "select_entries",
           "selected_entries"]



def select_entries(entries: Sequence[Entry], include: Sequence[str],
                   exclude: Sequence[str]) -> list[Entry]:
    """The entries of a checked manifest a restore with these patterns
    writes, in order, the root always among them (see the module)."""
    if not include and not exclude:
        return list(entries)
    kept = selected_paths((e.path for e in entries), include, exclude)
    every = {e.path: e for e in entries}
    out: list[Entry] = []
    holder: dict[str, str] = {}  # a left-out first name -> the kept name holding its data
    for e in entries:
        if e.path not in kept:
            continue
        if isinstance(e, HardLinkEntry) and e.link not in kept:
            if e.link in holder:
                e = attrs.evolve(e, link=holder[e.link])
            else:
                holder[e.link] = e.path
                e = attrs.evolve(every[e.link], path=e.path)
        out.append(e)
    return out


def collisions(root: str, entries: Sequence[Entry], *, limit: int = 10) -> list[str]:
    """The entries a restore in place at ``root`` would overwrite: paths
    that hold something else than the entry (a folder where a folder is
    expected is fine; a file of the same size and mtime is the same file).
    The walk never follows a symlink: one on the way is a collision itself.

    Raises
    ------
    LocalPluginError
        If ``root`` is not a folder (or a symlink to one).
    """
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as err:
        raise LocalPluginError(f"{root} is not a folder ({err.strerror}): a restore in place "
                               "does not go through a symlink") from err
    found: list[str] = []
    try:
        for e in entries:
            if e.path == "." or len(found) >= limit:
                continue
            why = _differs(root_fd, e)
            if why is not None:
                found.append(f"{e.path} ({why})")
    finally:
        os.close(root_fd)
    return found


def _differs(root_fd: int, entry: Entry) -> str | None:
    """Why restoring ``entry`` would overwrite something; None if not."""
    parent, name = split(entry.path)
    try:
        dir_fd = open_dir(root_fd, parent)
    except FileNotFoundError:
        return None  # its folder is gone: nothing there to overwrite
    except OSError:
        return "a symlink or a file stands where a folder leads to it"
    try:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        target = os.readlink(name, dir_fd=dir_fd) if stat.S_ISLNK(st.st_mode) else None
    finally:
        os.close(dir_fd)
    return _compare(entry, st, target)


def _compare(entry: Entry, st: os.stat_result, target: str | None) -> str | None:
    if isinstance(entry, DirEntry):
        return None if stat.S_ISDIR(st.st_mode) else "not a folder now"
    if isinstance(entry, FileEntry) and stat.S_ISREG(st.st_mode) and st.st_size == entry.size \
            and st.st_mtime_ns == entry.meta.mtime_ns:
        return None
    if isinstance(entry, SymlinkEntry) and target is not None and target == entry.target:
        return None
    return "a symlink" if target is not None else "exists, and differs"


def selected_entries(manifest: Manifest, parameters: Mapping[str, Any]) -> list[Entry]:
    """The checked manifest's entries the restore's ``include`` and
    ``exclude`` keep (all of them without either)."""
    return select_entries(manifest.entries, parameters.get("include") or (),
                          parameters.get("exclude") or ())


def destination(resource: Resource, parameters: Mapping[str, Any]) -> str:
    """Where the restore puts the tree: ``<target>/<id>``, or with
    ``in_place`` the folder it was protected from.

    Raises
    ------
    LocalPluginError
        If neither ``target`` nor ``in_place`` is given.
    """
    return in_place_source(resource, parameters) or restore_destination(resource, parameters)


def refuse_overwrites(resource: Resource, dest: str, entries: Sequence[Entry], *,
                       force: bool) -> None:
    """Refuse a restore in place that would overwrite what differs, unless
    ``force``; a symlink on the way is refused even with it.

    Raises
    ------
    LocalPluginError
        Naming the first paths.
    """
    found = collisions(dest, entries)
    if not found:
        return
    through_links = [f for f in found if "symlink" in f]
    if through_links:
        raise LocalPluginError(f"{resource.key}: a restore in place does not go through a "
                               f"symlink; nothing was written: {', '.join(through_links)}")
    if not force:
        raise LocalPluginError(
            f"{resource.key}: a restore in place would overwrite what differs in {dest}: "
            f"{', '.join(found)}; nothing was written -- add --force to replace them, or "
            "restore elsewhere with --target DIR")
