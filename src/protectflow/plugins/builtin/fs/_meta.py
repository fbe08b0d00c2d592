"""File metadata as tar and rsync keep it, and directory descriptors to
reach any depth without following a symlink.

Read side (protect): owners (numeric ids, and names when they resolve),
extended attributes (POSIX ACLs are the ``system.posix_acl_access`` and
``system.posix_acl_default`` attributes), access and modification times.
Write side (restore): the same, applied to a file descriptor or to a name
relative to a directory descriptor, never through a symlink.

Every walk goes from a directory descriptor one component at a time with
``O_DIRECTORY | O_NOFOLLOW``, so a path may be deeper than ``PATH_MAX`` and
a symlink planted on the way is an error (``ELOOP``/``ENOTDIR``), not a
detour.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import grp
import os
import pwd
import stat
from typing import TYPE_CHECKING

from protectflow.plugins.builtin._target import remove
from protectflow.plugins.builtin.fs._entries import Meta

if TYPE_CHECKING:
    from protectflow.plugins.builtin.fs._entries import Entry

__all__ = ["DirStack", "apply_meta", "meta_of", "open_dir", "open_quietly",
           "read_xattrs", "remove", "split"]

#: Flags to open a directory on the way down: never through a symlink.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Reads that leave access times alone (the owner's or root's): a protect
#: must not change the atimes it records, or every run would differ.
NOATIME = getattr(os, "O_NOATIME", 0)
#: Mode bits a restore sets only when it also restores the owner (as tar -p).
SET_ID_BITS = stat.S_ISUID | stat.S_ISGID
_HAS_XATTR = hasattr(os, "listxattr")
#: Attributes the system gives a file by itself (an SELinux label): never
#: compared, never removed.
SYSTEM_XATTRS = frozenset(("security.selinux",))
_PROC_FD = os.path.isdir("/proc/self/fd")


def open_dir(dir_fd: int, rel: str) -> int:
    """A descriptor of folder ``rel`` (``/``-separated, relative) under
    ``dir_fd``, opened one component at a time without following symlinks."""
    fd = os.open(".", DIR_FLAGS, dir_fd=dir_fd)
    for name in rel.split("/") if rel not in ("", ".") else ():
        try:
            inner = os.open(name, DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = inner
    return fd


class DirStack:
    """The descriptors of the folders from a root down to the current one:
    moving between neighbouring folders (a sorted walk) reopens only what
    differs, so a deep tree costs one open per folder, not one per depth.

    Not thread-safe: one per thread.
    """

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.names: list[str] = []
        self.fds: list[int] = []

    def fd_of(self, rel_dir: str) -> int:
        """The descriptor of folder ``rel_dir`` (``""`` or ``"."``: the root)."""
        parts = rel_dir.split("/") if rel_dir not in ("", ".") else []
        keep = 0
        while keep < min(len(parts), len(self.names)) and parts[keep] == self.names[keep]:
            keep += 1
        while len(self.fds) > keep:
            os.close(self.fds.pop())
            self.names.pop()
        for name in parts[keep:]:
            self.fds.append(os.open(name, DIR_FLAGS, dir_fd=self.fd))
            self.names.append(name)
        return self.fd

    @property
    def fd(self) -> int:
        """The current folder's descriptor."""
        return self.fds[-1] if self.fds else self.root_fd

    def close(self) -> None:
        """Close every descriptor but the root's (the caller's)."""
        self.fd_of("")

    def __enter__(self) -> DirStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_quietly(path: str, flags: int, *, dir_fd: int | None = None) -> int:
    """``os.open`` with :data:`NOATIME`, or without it where it is not
    permitted (a file of another user's, as a user)."""
    try:
        return os.open(path, flags | NOATIME, dir_fd=dir_fd)
    except PermissionError:
        if not NOATIME:
            raise
        return os.open(path, flags, dir_fd=dir_fd)


def split(rel: str) -> tuple[str, str]:
    """``(parent folder, name)`` of a relative path."""
    parent, _, name = rel.rpartition("/")
    return parent, name


@functools.lru_cache(maxsize=4096)
def _user(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@functools.lru_cache(maxsize=4096)
def _group(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def _xattr_target(dir_fd: int, name: str, full: str) -> str:
    # /proc/self/fd/N/name stays short at any depth, and is resolved with
    # follow_symlinks=False: the attributes of the entry itself
    return f"/proc/self/fd/{dir_fd}/{name}" if _PROC_FD else full


def read_xattrs(target: int | str) -> dict[str, str]:
    """The extended attributes of ``target`` (a descriptor, or a path not
    followed if it is a symlink), values in base64; ``{}`` where unsupported."""
    if not _HAS_XATTR:
        return {}
    follow = isinstance(target, int)
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError:
        return {}
    out: dict[str, str] = {}
    for name in sorted(names):
        with contextlib.suppress(OSError):  # removed meanwhile, or not readable
            value = os.getxattr(target, name, follow_symlinks=follow)
            out[name] = base64.b64encode(value).decode("ascii")
    return out


def meta_of(st: os.stat_result, *, dir_fd: int, name: str, full: str) -> Meta:
    """The metadata a restore gives back, from a scan's ``lstat`` of ``name``
    in ``dir_fd`` (``full``: its path, for systems without ``/proc``)."""
    xattrs: tuple[tuple[str, str], ...] = ()
    if not stat.S_ISLNK(st.st_mode):  # a link's own attributes are not restorable as a user
        xattrs = tuple(read_xattrs(_xattr_target(dir_fd, name, full) if name else full).items())
    return Meta(stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_atime_ns, st.st_uid, st.st_gid,
                _user(st.st_uid), _group(st.st_gid), xattrs)


def _times(meta: Meta) -> tuple[int, int]:
    mtime = meta.mtime_ns
    return (mtime if meta.atime_ns is None else meta.atime_ns), mtime


def apply_meta(entry: Entry, *, fd: int | None = None, dir_fd: int | None = None,
               name: str = "", owners: bool = False, exact: bool = False) -> list[str]:
    """Give an entry restored in a private staging folder its metadata:
    owner (if ``owners``), mode, extended attributes, times -- in that order,
    since a chown clears set-id bits and capabilities.

    Through ``fd`` when there is one; else ``name`` in ``dir_fd`` (a symlink
    is never followed; a FIFO or device is not opened, and since the staging
    folder is private no one else can have swapped it for a link).
    ``exact`` (a folder kept by ``force``, through ``fd``): also remove the
    attributes the entry does not have -- an ACL someone added included.

    Returns
    -------
    list of str
        The extended attributes this process may not set (say, ``trusted.*``
        as a user, or any where the file system has none), as messages.
    """
    meta = entry.meta
    is_link = entry.kind == "symlink"
    mode = meta.mode
    uid, gid = meta.uid, meta.gid
    owners = owners and uid is not None and gid is not None  # none before version 3
    if not owners:
        mode &= ~SET_ID_BITS if entry.kind != "dir" else ~0
    if fd is not None:
        if owners and uid is not None and gid is not None:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        if exact:
            _drop_other_xattrs(fd, entry)
        fd_problems = _set_xattrs(fd, entry)
        os.utime(fd, ns=_times(meta))
        return fd_problems
    if owners and uid is not None and gid is not None:
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    problems: list[str] = []
    if not is_link:  # a symlink's own mode is not settable on Linux
        os.chmod(name, mode, dir_fd=dir_fd)
        if meta.xattrs and dir_fd is not None:
            problems = _set_xattrs(_xattr_target(dir_fd, name, name), entry)
    os.utime(name, ns=_times(meta), dir_fd=dir_fd, follow_symlinks=False)
    return problems


def _drop_other_xattrs(fd: int, entry: Entry) -> None:
    """Remove the attributes of ``fd`` that ``entry`` does not have."""
    if not _HAS_XATTR:
        return
    keep = {name for name, _ in entry.meta.xattrs} | SYSTEM_XATTRS
    with contextlib.suppress(OSError):
        for name in os.listxattr(fd):
            if name not in keep:
                os.removexattr(fd, name)


def _set_xattrs(target: int | str, entry: Entry) -> list[str]:
    problems: list[str] = []
    for key, value in entry.meta.xattrs:
        try:
            os.setxattr(target, key, base64.b64decode(value),
                        follow_symlinks=isinstance(target, int))
        except OSError as err:  # not permitted here, or not supported by this file system
            problems.append(f"{entry.path}: extended attribute {key} not restored: "
                            f"{err.strerror}")
    return problems
