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

import contextlib
import os
import stat
import time

from protectflow.errors import LocalPluginError

__all__ = ["check_private_dir", "default_state_dir", "private_dir", "write_private"]


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
    """``path``, made ``0700`` if missing, checked as the module says.

    Returns
    -------
    str
        The folder, its parent's symlinks resolved: the path the checks held for.

    Raises
    ------
    LocalPluginError
        When the folder or one above it could be changed by another user.
    """
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    folder = os.path.join(parent, os.path.basename(path))
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # then checked like any other
            os.mkdir(folder, 0o700)
    except OSError as err:
        raise LocalPluginError(f"cannot create the private folder {folder}: {err}") from err
    check_private_dir(folder)
    return folder


def check_private_dir(folder: str) -> None:
    """Refuse ``folder`` unless only this user (or root, above it) can change it.

    Raises
    ------
    LocalPluginError
        When it is missing, a symlink, not a folder, someone else's, or
        writable by others; or a folder above it is not safe.
    """
    me = os.geteuid()
    try:
        st = os.lstat(folder)
    except OSError as err:
        raise LocalPluginError(f"cannot use the private folder {folder}: {err}") from err
    fix = "remove it (as its owner) or set XDG_RUNTIME_DIR to a folder of your own"
    if stat.S_ISLNK(st.st_mode):
        raise LocalPluginError(f"refusing the private folder {folder}: it is a symlink; {fix}")
    if not stat.S_ISDIR(st.st_mode):
        raise LocalPluginError(f"refusing the private folder {folder}: it is not a folder; {fix}")
    if st.st_uid != me:
        raise LocalPluginError(f"refusing the private folder {folder}: it belongs to uid "
                               f"{st.st_uid}, not to you (uid {me}); {fix}")
    if st.st_mode & 0o022:
        raise LocalPluginError(f"refusing the private folder {folder}: others may write to it "
                               f"(mode {stat.S_IMODE(st.st_mode):o}); chmod 700 it")
    _check_ancestors(os.path.dirname(folder), me)


def _check_ancestors(folder: str, me: int) -> None:
    """Every folder above: owned by this user or root, and writable by others
    only with the sticky bit (which keeps them from renaming our entries)."""
    while True:
        st = os.stat(folder)
        if st.st_uid not in (me, 0):
            raise LocalPluginError(f"refusing private state under {folder}: it belongs to "
                                   f"uid {st.st_uid}, who could move it away")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise LocalPluginError(f"refusing private state under {folder}: others may "
                                   f"write to it (mode {stat.S_IMODE(st.st_mode):o}) and it "
                                   "has no sticky bit")
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def write_private(path: str, data: bytes, *, replace: bool = False) -> None:
    """Write ``path`` whole: ``0600``, never through a symlink, atomically
    (a reader sees the old file or the new one). Without ``replace`` an
    existing ``path`` is an error (:class:`FileExistsError`).

    Raises
    ------
    OSError
        When it cannot be written, or exists and ``replace`` is false.
    """
    temp = f"{path}.tmp{os.getpid()}-{time.monotonic_ns()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if replace:
            os.rename(temp, path)
        else:
            os.link(temp, path)  # fails if path exists: the exclusive creation
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
