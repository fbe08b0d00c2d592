"""Putting a rebuilt tree in place: staging, the content check that makes a
rerun a no-op, and ``force``'s merge.

The tree is built (:mod:`._build`) in a staging folder made beside the
destination, relative to the target folder's descriptor -- private (0700),
exclusive, with an unpredictable name -- and renamed into place at the end.
A failed restore removes its staging folder.

A destination that already holds the checkpoint's entries -- same types,
modes, times, sizes, link targets and, read and hashed, the same contents
(never a comparison of stat alone: each piece is named as the bank names its
chunks, by keyed hash, and compared with the manifest) -- is left as it is, so a rerun after a
crash succeeds. Otherwise a non-empty destination is refused, unless
``force``: then every entry of the checkpoint replaces what is at its path,
and files the checkpoint does not hold (added by the user) stay.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Sequence

from protectflow.errors import LocalPluginError
from protectflow.plugins.builtin._chunks import ChunkStore, sha256
from protectflow.plugins.builtin._target import check_owner, open_target, private_folder
from protectflow.plugins.builtin.fs._build import Outcome, build
from protectflow.plugins.builtin.fs._entries import (
    DirEntry,
    Entry,
    FileEntry,
    HardLinkEntry,
    SpecialEntry,
    SymlinkEntry,
)
from protectflow.plugins.builtin.fs._meta import (
    DIR_FLAGS,
    SET_ID_BITS,
    SYSTEM_XATTRS,
    DirStack,
    apply_meta,
    read_xattrs,
    remove,
    split,
)
from protectflow.plugins.builtin.fs._read import READ_FLAGS, data_extents, read_stream

__all__ = ["matches", "restore_into"]

ChunkId = Callable[[bytes | bytearray | memoryview], str]
_KINDS = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink",
          stat.S_IFIFO: "fifo", stat.S_IFCHR: "chr", stat.S_IFBLK: "blk"}


def restore_into(dest: str, entries: Sequence[Entry], store: ChunkStore, *,
                 force: bool, owners: bool, chunk_size: int, workers: int = 4,
                 allow_other_owner: bool = False, what: str = "restore") -> Outcome | None:
    """Rebuild checked ``entries`` at ``dest`` (whose folder is made if
    needed) from the chunks of ``store``; None if ``dest`` held them already.

    The folder is reached as :func:`.._target.open_target` says (no symlink
    another user could place is followed; another user's folder on the way,
    or at ``dest``, is refused unless ``allow_other_owner``), and everything
    below it is made relative to its descriptor.

    Raises
    ------
    LocalPluginError
        If ``dest`` holds something else and ``force`` is false, or its
        folder (or ``dest``) is another user's, or reached through a link
        another user could place.
    """
    parent, name = os.path.dirname(dest), os.path.basename(dest)
    target = open_target(parent, allow_other_owner=allow_other_owner, what=what)
    parent_fd = target.fd
    try:
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):  # a link is replaced, never followed
                check_owner(st, dest, allow_other_owner=allow_other_owner, what=what)
        if matches(parent_fd, name, entries, chunk_size=chunk_size, owners=owners,
                   chunk_id=store.chunk_id):
            return None
        full = _occupied(parent_fd, name)
        if full and not force:
            raise LocalPluginError(f"{what}: restore target {dest} is not empty; choose "
                                   "another target (--target), or restore with --force (the "
                                   "'force' parameter) to replace what the checkpoint holds")
        staging = private_folder(parent_fd, f".{name}.pf-restore-")
        try:
            staging_fd = os.open(staging, DIR_FLAGS, dir_fd=parent_fd)
            try:
                outcome = build(staging_fd, entries, store.reader(), owners=owners,
                                chunk_size=chunk_size, chunk_id=store.chunk_id,
                                workers=workers)
                if full:
                    _merge(staging_fd, parent_fd, name, entries, owners=owners,
                           damaged={d.path for d in outcome.damaged})
            finally:
                os.close(staging_fd)
            if not full:
                with contextlib.suppress(FileNotFoundError):
                    remove(parent_fd, name)  # an empty folder, or a file with force
                os.rename(staging, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                remove(parent_fd, staging)
        return outcome
    finally:
        target.close()


def _occupied(parent_fd: int, name: str) -> bool:
    """Whether ``name`` exists and is something other than an empty folder."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # a file or a symlink
    try:
        return bool(os.listdir(fd))
    finally:
        os.close(fd)


# -- force: the checkpoint's entries over an existing tree ------------------------------
def _merge(staging_fd: int, parent_fd: int, name: str, entries: Sequence[Entry], *,
           owners: bool, damaged: set[str]) -> None:
    """Move each entry from staging over its path in ``name``: a folder on
    both sides stays (and gets the entry's metadata), anything else is
    replaced; paths the checkpoint does not name, and the ``damaged`` files
    the restore could not write, are left alone."""
    if _occupied(parent_fd, name) and _kind_at(parent_fd, name) != "dir":
        remove(parent_fd, name)
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    dest_fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    moved: list[str] = []
    kept_dirs: list[Entry] = []
    try:
        with DirStack(staging_fd) as src, DirStack(dest_fd) as dst:
            for e in entries:
                path = e.path
                if path in damaged:
                    continue
                if path == "." or any(path.startswith(m + "/") for m in moved):
                    kept_dirs += [e] if path == "." else []
                    continue
                folder, base = split(path)
                dst_fd = dst.fd_of(folder)
                if isinstance(e, DirEntry) and _kind_at(dst_fd, base) == "dir":
                    kept_dirs.append(e)
                    continue
                with contextlib.suppress(FileNotFoundError):
                    remove(dst_fd, base)
                os.rename(base, base, src_dir_fd=src.fd_of(folder), dst_dir_fd=dst_fd)
                if isinstance(e, DirEntry):
                    moved.append(path)
        for e in sorted(kept_dirs, key=lambda e: -(e.path.count("/") + (e.path != "."))):
            with DirStack(dest_fd) as dst:  # its attributes exactly: no ACL added stays
                apply_meta(e, fd=dst.fd_of(e.path), owners=owners, exact=True)
    finally:
        os.close(dest_fd)


def _kind_at(dir_fd: int, name: str) -> str | None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return _KINDS.get(stat.S_IFMT(st.st_mode))


# -- is it restored already? --------------------------------------------------------------
def matches(parent_fd: int, name: str, entries: Sequence[Entry], *, chunk_size: int,
            owners: bool, chunk_id: ChunkId) -> bool:
    """Whether ``name`` in ``parent_fd`` holds every entry as a restore
    makes it, contents compared by hash (and holes where the entry has them):
    a chunked file's pieces named by ``chunk_id`` (the bank's keyed hash,
    as in the manifest), a packed file by its SHA-256."""
    try:
        root_fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError:
        return False
    inodes: dict[str, int] = {}
    names: dict[str, int] = {}  # a file's names in the checkpoint: its link count
    for e in entries:
        if isinstance(e, HardLinkEntry):
            names[e.link] = names.get(e.link, 1) + 1
    try:
        with DirStack(root_fd) as dirs:
            return all(_same(dirs, e, inodes, names, chunk_size=chunk_size, owners=owners,
                             chunk_id=chunk_id) for e in entries)
    except OSError:
        return False
    finally:
        os.close(root_fd)


def _same(dirs: DirStack, e: Entry, inodes: dict[str, int], names: dict[str, int], *,
          chunk_size: int, owners: bool, chunk_id: ChunkId) -> bool:
    folder, base = split(e.path) if e.path != "." else ("", ".")
    dir_fd = dirs.fd_of(folder)
    st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
    inodes[e.path] = st.st_ino
    if isinstance(e, HardLinkEntry):
        return st.st_ino == inodes.get(e.link)
    if not isinstance(e, DirEntry) and st.st_nlink != names.get(e.path, 1):
        return False  # a hard link from outside: writes through it would reach the file
    if e.kind != "symlink" and not _same_xattrs(dir_fd, base, e):
        return False  # an attribute or ACL added, changed or removed
    meta = e.meta
    mode = meta.mode if owners or e.kind == "dir" else meta.mode & ~SET_ID_BITS
    same = (_KINDS.get(stat.S_IFMT(st.st_mode)) == e.kind and st.st_mtime_ns == meta.mtime_ns
            and (e.kind == "symlink" or stat.S_IMODE(st.st_mode) == mode)
            and (not owners or (st.st_uid, st.st_gid) == (meta.uid, meta.gid)))
    if not same:
        return False
    if isinstance(e, SymlinkEntry):
        return bool(os.readlink(base, dir_fd=dir_fd) == e.target)
    if isinstance(e, SpecialEntry) and e.kind != "fifo":
        return (os.major(st.st_rdev), os.minor(st.st_rdev)) == e.rdev
    if isinstance(e, FileEntry):
        return st.st_size == e.size and _same_content(dir_fd, base, e, chunk_size, chunk_id)
    return True


def _same_xattrs(dir_fd: int, name: str, e: Entry) -> bool:
    """Whether ``name`` has exactly the entry's extended attributes (ACLs
    included), but those the system sets by itself."""
    found = read_xattrs(f"/proc/self/fd/{dir_fd}/{name}")
    return {k: v for k, v in found.items() if k not in SYSTEM_XATTRS} == dict(e.meta.xattrs)


def _same_content(dir_fd: int, name: str, e: FileEntry, chunk_size: int,
                  chunk_id: ChunkId) -> bool:
    fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    try:
        if e.pack is not None:
            return bool(sha256(os.pread(fd, e.size + 1, 0)) == e.pack.sha256)
        extents = [list(x) for x in e.sparse] if e.sparse is not None else (
            [[0, e.size]] if e.size else [])
        if e.sparse is not None and data_extents(fd, e.size) != extents:
            return False  # the same bytes, perhaps, but not the same holes
        pieces = read_stream(fd, extents, bytearray(chunk_size))
        return tuple(chunk_id(piece) for piece in pieces) == e.chunks
    finally:
        os.close(fd)
