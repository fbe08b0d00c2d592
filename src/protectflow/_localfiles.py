"""Local files protectflow trusts: folders only this user can change, the
small private files in them, and the small files a user names.

Two kinds of local state must not be swapped under protectflow by another
local user: the plugins' private state (an application's freeze tokens,
sqlite's staging) and the folder of a bank's key files. Both are checked
here, one way (:func:`open_private_dir`):

- the folder, and the folders of its own that protectflow makes on the way
  to it (the keys folder and the config folder above it), are refused when
  one is a symlink, not a folder, someone else's, or writable by group or
  others; missing ones are made ``0700``;
- every folder above those must belong to this user or root, and be
  writable by others only with the sticky bit (which keeps them from
  renaming our entries away).

The checks hold for what is then used: the folders are opened one by one
from a descriptor of their parent, never following a symlink, and each
opened folder is the one checked; files are made and read relative to the
last descriptor (:func:`write_private_file`, :func:`read_private_file`).

A file a user names (``--password-file``, ``key import FILE``) is opened
without blocking, refused unless it is a regular file, and read up to a
limit (:func:`read_regular_file`): a FIFO or a device can neither hang a
command nor feed it without end.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence

__all__ = ["Refused", "check_private_dir", "open_private_dir", "read_private_file",
           "read_regular_file", "write_private_file"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a symlink"))


class Refused(Exception):
    """A local folder or file protectflow will not use; ``path`` names it and
    the message says what is wrong and how to fix it. Callers turn it into
    their own error (a plugin's, the bank's)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(message)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_dir_stat(st: os.stat_result, folder: str, *, what: str, fix: str) -> None:
    """Refuse the folder ``st`` describes (from ``lstat``/``fstat``) unless
    it is a folder of this user that nobody else may write to.

    Raises
    ------
    Refused
        Saying which rule it breaks, with ``fix``.
    """
    me = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        raise Refused(folder, f"refusing {what} {folder}: it is a symlink; {fix}")
    if not stat.S_ISDIR(st.st_mode):
        raise Refused(folder, f"refusing {what} {folder}: it is not a folder; {fix}")
    if st.st_uid != me:
        raise Refused(folder, f"refusing {what} {folder}: it belongs to uid {st.st_uid}, "
                              f"not to you (uid {me}); {fix}")
    if st.st_mode & 0o022:
        raise Refused(folder, f"refusing {what} {folder}: others may write to it (mode "
                              f"{stat.S_IMODE(st.st_mode):o}); chmod 700 it")


def check_ancestors(folder: str, *, what: str) -> None:
    """Refuse ``folder`` and every folder above it unless each belongs to this
    user or root and is writable by others only with the sticky bit.

    Raises
    ------
    Refused
        Naming the first folder that breaks the rule.
    """
    me = os.geteuid()
    while True:
        try:
            st = os.stat(folder)
        except OSError as err:
            raise Refused(folder, f"cannot use {what} under {folder}: {err}") from err
        if st.st_uid not in (me, 0):
            raise Refused(folder, f"refusing {what} under {folder}: it belongs to uid "
                                  f"{st.st_uid}, who could move it away")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise Refused(folder, f"refusing {what} under {folder}: others may write to it "
                                  f"(mode {stat.S_IMODE(st.st_mode):o}) and it has no "
                                  "sticky bit")
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def open_private_dir(path: str, *, own: int = 1, what: str, fix: str,
                     create: bool = True) -> int:
    """A descriptor of the folder ``path``, checked as the module says: its
    last ``own`` components strictly (made ``0700`` when missing and
    ``create``), the folders above them as ancestors.

    Raises
    ------
    Refused
        When a folder breaks a rule, or cannot be made or opened.
    FileNotFoundError
        When a folder is missing and not ``create``.
    """
    base, names = _split(path, own)
    if not create and not os.path.isdir(base):
        raise FileNotFoundError(base)
    try:
        if create:
            os.makedirs(base, mode=0o700, exist_ok=True)
        base = os.path.realpath(base)
    except OSError as err:
        raise Refused(base, f"cannot create {what} under {base}: {err}") from err
    check_ancestors(base, what=what)
    fd = os.open(base, _DIR_FLAGS)
    folder = base
    try:
        for name in names:
            folder = os.path.join(folder, name)
            fd = _open_child(fd, name, folder, what=what, fix=fix, create=create)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _split(path: str, own: int) -> tuple[str, Sequence[str]]:
    names: list[str] = []
    base = os.path.abspath(path)
    for _ in range(own):
        base, name = os.path.split(base)
        names.insert(0, name)
    return base, names


def _open_child(parent: int, name: str, folder: str, *, what: str, fix: str,
                create: bool) -> int:
    """The descriptor of ``name`` in ``parent`` (which it closes), checked."""
    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=parent)
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise Refused(folder, f"cannot use {what} {folder}: {err}") from err
    check_dir_stat(st, folder, what=what, fix=fix)
    try:
        child = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as err:
        raise Refused(folder, f"refusing {what} {folder}: it changed while it was "
                              f"checked ({err}); run again") from err
    opened = os.fstat(child)
    if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
        os.close(child)
        raise Refused(folder, f"refusing {what} {folder}: it was replaced while it was "
                              "checked; run again")
    os.close(parent)
    return child


def check_private_dir(folder: str, *, what: str, fix: str) -> None:
    """Refuse ``folder`` (by path) unless only this user can change it, and
    only this user or root the folders above it.

    Raises
    ------
    Refused
        When it is missing, or breaks a rule.
    """
    try:
        st = os.lstat(folder)
    except OSError as err:
        raise Refused(folder, f"cannot use {what} {folder}: {err}") from err
    check_dir_stat(st, folder, what=what, fix=fix)
    check_ancestors(os.path.dirname(folder), what=what)


# -- files --------------------------------------------------------------------------
def write_private_file(dir_fd: int, name: str, data: bytes, *, replace: bool,
                       temp: str) -> None:
    """Write ``name`` in the folder ``dir_fd`` whole: ``0600``, never through
    a symlink, made under the temporary name ``temp`` (exclusively) and
    renamed into place, so a reader sees the old file or the new one.
    Without ``replace`` an existing ``name`` is an error.

    Raises
    ------
    FileExistsError
        When ``name`` exists and ``replace`` is false (or ``temp`` exists).
    OSError
        When it cannot be written.
    """
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:  # a link fails if name exists: the exclusive creation
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        with contextlib.suppress(OSError):  # the entry's durability, where supported
            os.fsync(dir_fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)


def read_private_file(dir_fd: int, name: str, *, path: str, limit: int) -> bytes | None:
    """The bytes of ``name`` in the folder ``dir_fd``, or None if it is not
    there; opened without following a symlink and refused unless a regular
    file of this user that nobody else may read or write, of at most
    ``limit`` bytes. ``path`` names it in messages.

    Raises
    ------
    Refused
        When it breaks a rule or cannot be read.
    """
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as err:
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                raise Refused(path, f"refusing {path}: it is a symlink; remove it") from err
        raise Refused(path, f"cannot read {path}: {err}") from err
    with contextlib.closing(_Fd(fd)):
        st = os.fstat(fd)
        me = os.geteuid()
        if not stat.S_ISREG(st.st_mode):
            raise Refused(path, f"refusing {path}: it is {_kind(st.st_mode)}; remove it")
        if st.st_uid != me:
            raise Refused(path, f"refusing {path}: it belongs to uid {st.st_uid}, not to "
                                f"you (uid {me}); remove it (as its owner)")
        if st.st_mode & 0o077:
            raise Refused(path, f"refusing {path}: others may read or write it (mode "
                                f"{stat.S_IMODE(st.st_mode):o}); chmod 600 it")
        return _read_limited(fd, path, limit)


def read_regular_file(path: str, *, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes of the regular file a user named: opened
    without blocking (a FIFO's open waits for no writer), refused unless a
    regular file (a FIFO, a device, a folder), and refused when larger.

    Raises
    ------
    Refused
        When it cannot be opened, is not a regular file, or is too large.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise Refused(path, f"cannot read {what} {path}: {err.strerror or err}") from err
    with contextlib.closing(_Fd(fd)):
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise Refused(path, f"refusing {what} {path}: it is {_kind(mode)}, not a "
                                "regular file; give a file")
        return _read_limited(fd, f"{what} {path}", limit)


def _read_limited(fd: int, what: str, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        try:
            chunk = os.read(fd, limit + 1 - size)
        except OSError as err:
            raise Refused(what, f"cannot read {what}: {err.strerror or err}") from err
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise Refused(what, f"refusing {what}: it holds more than {limit} bytes")


class _Fd:
    """A descriptor for :func:`contextlib.closing`."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)
