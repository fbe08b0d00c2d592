"""Opening a restore's target folder so that no one else can redirect it.

Root restoring into a folder another user controls is the case to defend:
that user may swap the target, or any folder on the way to it, for a
symlink to a root-only folder between the restore's checks and its writes.
So the target is reached from ``/`` one component at a time, each opened
with ``O_DIRECTORY | O_NOFOLLOW`` relative to the descriptor of the one
before, missing ones made with ``mkdir`` relative to that descriptor; what
the restore then writes is created, staged and renamed relative to the
target's descriptor (``*at`` calls), never through a path again.

- A symlink on the way is followed only where no other user can have put
  it: in a folder owned by root or by this user that no one else may write
  (``/var/run -> /run``). Anywhere else it is refused, naming it.
- A folder on the way owned by another user (root's own folders, and this
  user's, are trusted) is refused, naming it and its owner, unless the
  operator says otherwise (the restore's ``allow_other_owner`` parameter,
  ``--allow-other-owner``): that user could swap what is below it. Even
  then nothing is followed, so a swap makes the restore fail, not write
  elsewhere.
- :func:`private_folder` makes a staging folder (0700, an unpredictable
  name, ``mkdir`` relative to the target's descriptor) for what a restore
  writes before renaming it into place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import secrets
import stat

from protectflow.errors import LocalPluginError

__all__ = ["TargetDir", "check_owner", "open_target", "private_folder", "remove",
           "target_problem"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: Symlinks followed on the way to one target, as the kernel's own limit.
_MAX_LINKS = 40


def _owner_name(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _trusted_owner(uid: int) -> bool:
    return uid in (0, os.geteuid())


def check_owner(st: os.stat_result, shown: str, *, allow_other_owner: bool,
                what: str) -> None:
    """Refuse ``shown`` (its stat ``st``) if another user owns it.

    Raises
    ------
    LocalPluginError
        Naming it, its owner, and the two ways out.
    """
    if allow_other_owner or _trusted_owner(st.st_uid):
        return
    raise LocalPluginError(
        f"{what}: the restore target's folder {shown} is owned by {_owner_name(st.st_uid)}, "
        "who could swap what the restore writes there for a link to a file of yours; "
        "restore into a folder of your own (--target), or, if you trust that user, "
        "restore with --allow-other-owner (the 'allow_other_owner' parameter)")


class TargetDir:
    """The target folder's descriptor (``fd``), reached as the module says,
    and its path as given (``path``, for messages). Close it after use."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path

    def close(self) -> None:
        """Close the descriptor."""
        os.close(self.fd)

    def __enter__(self) -> TargetDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_target(path: str, *, allow_other_owner: bool, what: str) -> TargetDir:
    """The folder ``path`` (absolute), made if missing, reached without
    following any symlink another user could have placed.

    Raises
    ------
    LocalPluginError
        If a folder on the way is another user's (and ``allow_other_owner``
        is false), a symlink another user could have placed, or not a folder.
    """
    walk = _Walk(os.open("/", _DIR), allow_other_owner=allow_other_owner, what=what)
    try:
        walk.down([p for p in path.split("/") if p], path)
    except BaseException:
        os.close(walk.fd)
        raise
    return TargetDir(walk.fd, path)


def target_problem(path: str, *, allow_other_owner: bool, what: str) -> str | None:
    """Why a restore into the folder ``path`` would be refused (see
    :func:`open_target`), found without making or changing anything; None
    if it would not (as far as the folders that exist now tell)."""
    walk = _Walk(os.open("/", _DIR), allow_other_owner=allow_other_owner, what=what,
                 make=False)
    try:
        walk.down([p for p in path.split("/") if p], path)
    except LocalPluginError as err:
        return str(err)
    except OSError as err:
        return f"{what}: the restore target {path} cannot be reached: {err.strerror}"
    finally:
        os.close(walk.fd)
    return None


class _Missing(Exception):
    """A folder on the way does not exist (a check that makes nothing stops there)."""


class _Walk:
    """A walk down from ``/``: ``fd`` is the folder reached, the only one open;
    ``make``: missing folders are made (else the walk stops at the first)."""

    def __init__(self, fd: int, *, allow_other_owner: bool, what: str,
                 make: bool = True) -> None:
        self.fd = fd
        self.allow_other_owner = allow_other_owner
        self.what = what
        self.make = make

    def _move(self, fd: int) -> None:
        os.close(self.fd)
        self.fd = fd

    def down(self, parts: list[str], path: str) -> None:
        """Go down ``parts``, following only the links :func:`_link` trusts."""
        with contextlib.suppress(_Missing):
            self._down(parts, path)

    def _down(self, parts: list[str], path: str) -> None:
        done, links = "", 0
        while parts:
            name = parts.pop(0)
            if name in (".", ""):
                continue
            if name == "..":
                raise LocalPluginError(f"{self.what}: the restore target {path} has a '..' "
                                       "component; give the folder's own path")
            done = f"{done}/{name}"
            inner = _open_or_make(self.fd, name, done, self.what, make=self.make)
            if isinstance(inner, str):  # a link no one else can have placed: go where it goes
                links += 1
                if links > _MAX_LINKS:
                    raise LocalPluginError(f"{self.what}: too many symlinks on the way to {path}")
                parts[:0] = [p for p in inner.split("/") if p]
                if inner.startswith("/"):
                    self._move(os.open("/", _DIR))
                continue
            self._move(inner)
            check_owner(os.fstat(self.fd), done, allow_other_owner=self.allow_other_owner,
                        what=self.what)


def _open_or_make(fd: int, name: str, shown: str, what: str, *, make: bool) -> int | str:
    """The folder ``name`` in ``fd``, opened (made if missing), or the
    target of a symlink there that no other user can have placed.

    Raises
    ------
    LocalPluginError
        If it is not a folder, or a symlink another user could have placed.
    """
    try:
        return os.open(name, _DIR, dir_fd=fd)
    except FileNotFoundError:
        if not make:
            raise _Missing(shown) from None
        return _make(fd, name, shown, what)
    except OSError as err:
        if err.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
    target = _link(fd, name, shown, what)
    if target is None:
        raise LocalPluginError(f"{what}: the restore target's {shown} is not a folder")
    return target


def _make(fd: int, name: str, shown: str, what: str) -> int:
    """Make the missing folder ``name`` in ``fd`` and open it (never a
    link someone put there meanwhile)."""
    with contextlib.suppress(FileExistsError):  # made meanwhile: opened below, not followed
        os.mkdir(name, 0o755, dir_fd=fd)
    try:
        return os.open(name, _DIR, dir_fd=fd)
    except OSError as err:
        raise LocalPluginError(f"{what}: the restore target's {shown} changed while it was "
                               f"made ({err.strerror}); nothing was followed") from None


def _link(fd: int, name: str, shown: str, what: str) -> str | None:
    """The target of the symlink ``name`` in ``fd`` if no other user could
    have put it there, else refuse it; None if it is not a symlink."""
    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        return None
    folder = os.fstat(fd)
    if not (_trusted_owner(folder.st_uid) and _trusted_owner(st.st_uid)
            and not folder.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
        raise LocalPluginError(
            f"{what}: the restore target's {shown} is a symlink in a folder another user "
            "can change; it is not followed -- give the folder it points to, if that is "
            "the one you mean")
    return os.readlink(name, dir_fd=fd)


def private_folder(parent_fd: int, prefix: str) -> str:
    """Make a new folder (0700, an unpredictable name starting with
    ``prefix``) in ``parent_fd``; its name."""
    for _ in range(100):
        name = f"{prefix}{secrets.token_hex(8)}"
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            continue
        return name
    raise LocalPluginError("could not make a staging folder: every name tried was taken")


def remove(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd``, the whole tree if it is a folder,
    never following a symlink (``shutil.rmtree`` takes ``dir_fd`` only
    from Python 3.11)."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return
    fd = os.open(name, _DIR, dir_fd=dir_fd)
    try:
        if not st.st_mode & stat.S_IWUSR:
            os.fchmod(fd, 0o700)  # a read-only folder a failed restore left behind
        for child in os.listdir(fd):
            remove(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
