"""The sqlite plugin's stored copies read back: integrity checks, and the
restore and verify that rebuild a database file from its chunks.

Restore writes into a file created exclusively in a private staging folder
beside the destination, checks it with ``PRAGMA integrity_check`` through
its own descriptor and renames it into place relative to descriptors: a
symlink planted at the destination is replaced, never followed (see
:func:`restore_database`).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
import tempfile
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from protectflow.dag.model import Resource
from protectflow.errors import LocalPluginError
from protectflow.plugins.base import HookCheckpoint
from protectflow.plugins.builtin._chunks import ChunkStore
from protectflow.plugins.builtin._local import (
    FORCE_HINT,
    committed_manifest,
    in_place_source,
    restore_destination,
    store_of,
)
from protectflow.plugins.builtin._target import (
    check_owner,
    open_target,
    private_folder,
    remove,
)
from protectflow.plugins.builtin.sqlite._records import SqliteManifest
from protectflow.plugins.contents import Item
from protectflow.plugins.progress import advance

__all__ = ["check", "contents_of", "database_destination", "file_chunks", "integrity_check",
           "read_manifest", "restore_database", "restore_name", "table_rows", "verify_database"]

#: An extension the restored file may take from the stored source's name.
#: The staged copy's name in its private folder, and how it is created.
_STAGED = "database"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SUFFIX = re.compile(r"\.[A-Za-z0-9_+-]{1,16}")


def integrity_check(path: str) -> str:
    """``PRAGMA integrity_check`` of the database at ``path``: ``"ok"`` or the problems."""
    try:
        # immutable: our copies have no WAL, and a check must leave no -wal/-shm behind
        con = sqlite3.connect(f"file:{quote(path)}?immutable=1", uri=True)
        try:
            rows = con.execute("PRAGMA integrity_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        return f"not a usable database: {err}"
    return "; ".join(str(r[0]) for r in rows[:20])


def check(path: str, what: str) -> None:
    """Raise unless ``integrity_check`` of ``path`` is ok.

    Raises
    ------
    LocalPluginError
        Saying what the check found.
    """
    result = integrity_check(path)
    if result != "ok":
        raise LocalPluginError(f"{what}: PRAGMA integrity_check did not return ok: {result}")


def read_manifest(checkpoint: HookCheckpoint, resource: Resource) -> SqliteManifest:
    """The manifest a protect committed for ``resource``.

    Raises
    ------
    LocalPluginError
        If the checkpoint holds none, or one of a version it cannot read, or
        one that is not valid.
    """
    return SqliteManifest.from_json(committed_manifest(
        checkpoint.get_resource_bank_section(resource), resource, missing="no copy of it"),
        what=resource.key)


def _write_copy(store: ChunkStore, manifest: SqliteManifest, fd: int) -> None:
    read = store.reader()
    with os.fdopen(os.dup(fd), "wb") as f:
        for digest in manifest.chunks:
            data = read(digest)
            f.write(data)
            advance(len(data))
    advance(0, 1)


def restore_name(resource: Resource, manifest: SqliteManifest) -> str:
    """The restored file's name: the database file's own name when the
    resource id is that name or its stem (``orders`` of ``orders.db`` comes
    back as ``orders.db``), else the id; only a plain extension is taken
    from the bank."""
    stem, suffix = os.path.splitext(os.path.basename(manifest.source))
    if stem == resource.id and _SUFFIX.fullmatch(suffix):
        return resource.id + suffix
    return resource.id


def database_destination(resource: Resource, parameters: Mapping[str, Any],
                         manifest: SqliteManifest) -> str:
    """Where the restore writes the database: ``<target>/<name>`` (see
    :func:`restore_name`), or with ``in_place`` the file it was protected
    from (a symlink there is replaced, never followed).

    Raises
    ------
    LocalPluginError
        If neither ``target`` nor ``in_place`` is given.
    """
    source = in_place_source(resource, parameters)
    if source is not None:
        return source
    return os.path.join(os.path.dirname(restore_destination(resource, parameters)),
                        restore_name(resource, manifest))


def restore_database(checkpoint: HookCheckpoint, resource: Resource,
                     parameters: dict[str, Any]) -> str:
    """Write the stored database to ``<target>/<name>`` (see
    :func:`restore_name`) with its mode, mtime and, as root, owner; returns
    the path.

    The target folder is reached without following a link another user
    could place, and refused if another user owns it (or a folder on the
    way, or the database there) unless ``allow_other_owner``
    (:mod:`.._target`). The copy is written into a private staging folder
    (0700, an unpredictable name, made relative to the target's descriptor)
    in a file created exclusively without following links, checked through
    that file's own descriptor, then renamed into place relative to both
    folders' descriptors: whatever anyone swaps meanwhile, the file renamed
    is the one written and checked, and a link at the destination is
    replaced, never followed.

    Raises
    ------
    LocalPluginError
        If the destination exists (without ``force``), its folder is refused,
        or the copy fails ``integrity_check``.
    """
    manifest = read_manifest(checkpoint, resource)
    dest = database_destination(resource, parameters, manifest)
    name, force = os.path.basename(dest), bool(parameters.get("force", False))
    allow = bool(parameters.get("allow_other_owner", False))
    store = store_of(checkpoint, resource)
    with open_target(os.path.dirname(dest), allow_other_owner=allow,
                     what=resource.key) as target:
        if _present(target.fd, name, dest, force=force, allow=allow, what=resource.key):
            if _chunks_at(store, target.fd, name, manifest) == list(manifest.chunks):
                return dest  # restored by an earlier attempt
            if not force:
                raise LocalPluginError(f"{resource.key}: restore target {dest} is not "
                                       f"empty; {FORCE_HINT}")
        staging = private_folder(target.fd, f".{name}.pf-restore-")
        try:
            staging_fd = os.open(staging, DIR_FLAGS, dir_fd=target.fd)
            try:
                _stage(store, manifest, staging_fd, parameters, what=resource.key)
                _replace(target.fd, name, staging_fd)
            finally:
                os.close(staging_fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                remove(target.fd, staging)
    return dest


def _present(fd: int, name: str, dest: str, *, force: bool, allow: bool, what: str) -> bool:
    """Whether something is at ``name`` in ``fd``: refused if it is another
    user's (but a link: replaced, never followed) or an occupied folder
    without ``force``; an empty folder is removed (the database takes its place)."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISLNK(st.st_mode):
        check_owner(st, dest, allow_other_owner=allow, what=what)
    if stat.S_ISDIR(st.st_mode):
        sub = os.open(name, DIR_FLAGS, dir_fd=fd)
        try:
            empty = not os.listdir(sub)
        finally:
            os.close(sub)
        if empty or force:
            remove(fd, name)
            return False
    return True


def _stage(store: ChunkStore, manifest: SqliteManifest, staging_fd: int,
           parameters: dict[str, Any], *, what: str) -> None:
    """Write, check and give its metadata to ``db`` in the private staging folder."""
    fd = os.open(_STAGED, _CREATE, 0o600, dir_fd=staging_fd)
    try:
        _write_copy(store, manifest, fd)
        # the file just written, through its own descriptor: no path to swap
        check(f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else
              f"/proc/self/fd/{staging_fd}/{_STAGED}", f"{what}: restored copy")
        _set_meta(fd, manifest, parameters)
    finally:
        os.close(fd)


def _replace(target_fd: int, name: str, staging_fd: int) -> None:
    """Put the staged copy at ``name``, the old database's -wal, -shm and
    -journal gone (they belong to it); all relative to descriptors."""
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(name + suffix, dir_fd=target_fd)
    os.rename(_STAGED, name, src_dir_fd=staging_fd, dst_dir_fd=target_fd)


def _chunks_at(store: ChunkStore, fd: int, name: str,
               manifest: SqliteManifest) -> list[str] | None:
    """The chunk names of the regular file ``name`` in ``fd`` (not through a
    link), or None if it is something else."""
    try:
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                          dir_fd=fd)
    except OSError:
        return None
    return _chunks_of_fd(store, file_fd, manifest)


def _set_meta(fd: int, manifest: SqliteManifest, parameters: dict[str, Any]) -> None:
    """The database's owner (as root, or when asked), mode and mtime."""
    owners = parameters.get("owners")
    meta = manifest.meta
    if (os.geteuid() == 0 if owners is None else owners) and meta.uid is not None \
            and meta.gid is not None:
        os.fchown(fd, meta.uid, meta.gid)
    if meta.mode is not None:
        os.fchmod(fd, meta.mode & 0o777)
    if meta.mtime_ns is not None:
        os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))


def file_chunks(store: ChunkStore, path: str, manifest: SqliteManifest) -> list[str] | None:
    """The chunk names in ``store`` of the file at ``path`` (not through a
    symlink), or None if there is no such regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    return _chunks_of_fd(store, fd, manifest)


def _chunks_of_fd(store: ChunkStore, fd: int, manifest: SqliteManifest) -> list[str] | None:
    """The chunk names of the open file ``fd`` (closed after), or None if it
    is not a regular file."""
    size = manifest.chunk_size
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        out = []
        while piece := f.read(size):
            out.append(store.chunk_id(piece))
    return out


def verify_database(checkpoint: HookCheckpoint, resource: Resource) -> dict[str, Any]:
    """Rebuild the stored copy in a temporary file and check it.

    Raises
    ------
    LocalPluginError
        If it fails ``integrity_check``.
    ChunkError
        If a chunk is missing or corrupt.
    """
    manifest = read_manifest(checkpoint, resource)
    with tempfile.TemporaryDirectory(prefix="protectflow-verify-") as tmp:
        path = os.path.join(tmp, "copy.db")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            _write_copy(store_of(checkpoint, resource), manifest, fd)
        finally:
            os.close(fd)
        check(path, f"{resource.key}: stored copy")
    return {"bytes": manifest.size, "chunks": len(manifest.chunks), "integrity": "ok"}


def table_rows(path: str) -> dict[str, int]:
    """Each table of the database at ``path`` and its number of rows."""
    # immutable: no lock, no -shm or -wal file left beside the snapshot
    con = sqlite3.connect(f"file:{quote(path)}?mode=ro&immutable=1", uri=True)
    try:
        names = [str(r[0]) for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {name: int(con.execute(
            f'SELECT COUNT(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[0])
            for name in names}
    finally:
        con.close()


def contents_of(manifest: SqliteManifest) -> list[Item]:
    """The database file of ``manifest`` and its tables (``ls``'s items)."""
    items = [Item(".", "database", size=manifest.size, mode=manifest.meta.mode,
                  mtime_ns=manifest.meta.mtime_ns, content="chunks:" + ",".join(manifest.chunks),
                  info={"source": manifest.source})]
    items += [Item(name, "table", rows=rows) for name, rows in manifest.tables or ()]
    return items
