"""The sqlite plugin's stored copies read back: integrity checks, and the
restore and verify that rebuild a database file from its chunks.

Restore writes into a file created exclusively (0600, a random name beside
the destination, ``tempfile.mkstemp``), checks it with ``PRAGMA
integrity_check`` and renames it into place: a symlink planted at the
destination is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import stat
import tempfile
from typing import Any
from urllib.parse import quote

from protectflow.dag.model import Resource
from protectflow.errors import LocalPluginError
from protectflow.plugins.base import HookCheckpoint
from protectflow.plugins.builtin._chunks import ChunkStore
from protectflow.plugins.builtin._local import (
    check_destination,
    clear_destination,
    committed_manifest,
    restore_destination,
    store_of,
)
from protectflow.plugins.builtin.sqlite._records import SqliteManifest

__all__ = ["check", "file_chunks", "integrity_check", "read_manifest", "restore_database",
           "restore_name", "verify_database"]

#: An extension the restored file may take from the stored source's name.
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
            f.write(read(digest))


def restore_name(resource: Resource, manifest: SqliteManifest) -> str:
    """The restored file's name: the database file's own name when the
    resource id is that name or its stem (``orders`` of ``orders.db`` comes
    back as ``orders.db``), else the id; only a plain extension is taken
    from the bank."""
    stem, suffix = os.path.splitext(os.path.basename(manifest.source))
    if stem == resource.id and _SUFFIX.fullmatch(suffix):
        return resource.id + suffix
    return resource.id


def restore_database(checkpoint: HookCheckpoint, resource: Resource,
                     parameters: dict[str, Any]) -> str:
    """Write the stored database to ``<target>/<name>`` (see
    :func:`restore_name`) with its mode, mtime and, as root, owner; returns
    the path.

    The copy is written to a file created exclusively, 0600, at an
    unpredictable name beside the destination, checked, then renamed into
    place: a link planted in the target is replaced, never followed.

    Raises
    ------
    LocalPluginError
        If the destination exists (without ``force``) or the copy fails
        ``integrity_check``.
    """
    manifest = read_manifest(checkpoint, resource)
    dest = os.path.join(os.path.dirname(restore_destination(resource, parameters)),
                        restore_name(resource, manifest))
    if file_chunks(store_of(checkpoint, resource), dest, manifest) == list(manifest.chunks):
        return dest  # restored by an earlier attempt
    force = bool(parameters.get("force", False))
    check_destination(dest, force, resource.key)
    fd, staging = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.pf-restore-",
                                   dir=os.path.dirname(dest))
    try:
        _write_copy(store_of(checkpoint, resource), manifest, fd)
        check(staging, f"{resource.key}: restored copy")
        _set_meta(fd, manifest, parameters)
    except BaseException:
        os.unlink(staging)
        raise
    finally:
        os.close(fd)
    clear_destination(dest, force, resource.key)
    for suffix in ("-wal", "-shm", "-journal"):  # they belong to the database replaced
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest + suffix)
    os.replace(staging, dest)
    return dest


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
