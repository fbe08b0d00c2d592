"""Private local state: a folder only this user can change, files only this
user can read.

The local plugins keep state on the machine that runs their hooks (an
application's freeze tokens). Kept in a shared temporary folder, another
local user could plant or swap it, so it lives in a per-user folder --
``$XDG_RUNTIME_DIR/protectflow`` when the session has one, else
``<user cache dir>/protectflow/run`` -- created ``0700`` and refused when it
is a symlink, belongs to someone else or others may write to it, or when a
folder above it lets someone else rename it away (group- or world-writable
without the sticky bit, or owned by neither this user nor root). Files are
created ``0600``, exclusively, without following a symlink.
"""

from __future__ import annotations

import os
import time

from protectflow import _localfiles
from protectflow.errors import LocalPluginError

__all__ = ["check_private_dir", "default_state_dir", "private_dir", "write_private"]

_WHAT = "the private folder"
_FIX = "remove it (as its owner) or set XDG_RUNTIME_DIR to a folder of your own"


def default_state_dir() -> str:
    """The per-user folder for local state (not created here)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return os.path.join(runtime, "protectflow")
    # Imported here, not at the top: only this fallback needs it, and
    # `import protectflow` stays light.
    import platformdirs

    return os.path.join(platformdirs.user_cache_dir("protectflow"), "run")


def private_dir(path: str) -> str:
    """``path``, made ``0700`` if missing, checked as the module says (the
    checks are :mod:`protectflow._localfiles`', shared with the bank's key folder).

    Returns
    -------
    str
        The folder, its parent's symlinks resolved: the path the checks held for.

    Raises
    ------
    LocalPluginError
        When the folder or one above it could be changed by another user.
    """
    try:
        os.close(_localfiles.open_private_dir(path, what=_WHAT, fix=_FIX))
    except _localfiles.Refused as err:
        raise LocalPluginError(str(err)) from None
    return os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))),
                        os.path.basename(path))


def check_private_dir(folder: str) -> None:
    """Refuse ``folder`` unless only this user (or root, above it) can change it.

    Raises
    ------
    LocalPluginError
        When it is missing, a symlink, not a folder, someone else's, or
        writable by others; or a folder above it is not safe.
    """
    try:
        _localfiles.check_private_dir(folder, what=_WHAT, fix=_FIX)
    except _localfiles.Refused as err:
        raise LocalPluginError(str(err)) from None


def write_private(path: str, data: bytes, *, replace: bool = False) -> None:
    """Write ``path`` whole: ``0600``, never through a symlink, atomically
    (a reader sees the old file or the new one). Without ``replace`` an
    existing ``path`` is an error (:class:`FileExistsError`).

    Raises
    ------
    OSError
        When it cannot be written, or exists and ``replace`` is false.
    """
    folder, name = os.path.split(os.path.abspath(path))
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _localfiles.write_private_file(dir_fd, name, data, replace=replace,
                                       temp=f"{name}.tmp{os.getpid()}-{time.monotonic_ns()}")
    finally:
        os.close(dir_fd)
