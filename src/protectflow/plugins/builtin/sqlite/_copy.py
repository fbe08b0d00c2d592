"""The sqlite plugin's stored copies read back: integrity checks, and the
restore and verify that rebuild a database file from its chunks.

Restore writes into a file created exclusively (0600, a random name beside
the destination, ``tempfile.mkstemp``), checks it with ``PRAGMA
integrity_check`` and renames it into place: a symlink planted at the
destination is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import hashlib
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
    check_destination,
    clear_destination,
    committed_manifest,
    resolve_path,
    restore_destination,
    store_of,
)
from protectflow.plugins.contents import Item
from protectflow.plugins.progress import advance

__all__ = ["check", "contents_of", "database_destination", "file_chunks", "integrity_check",
           "read_manifest", "restore_database", "restore_name", "table_rows", "verify_database"]

_READABLE_VERSIONS = (1, 2)
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


def read_manifest(checkpoint: HookCheckpoint, resource: Resource) -> dict[str, Any]:
    manifest: dict[str, Any] = committed_manifest(
        checkpoint.get_resource_bank_section(resource), resource, missing="no copy of it")
    if manifest.get("version") not in _READABLE_VERSIONS:
        raise LocalPluginError(
            f"{resource.key}: its manifest has format version {manifest.get('version')!r}; "
            f"this protectflow reads versions {', '.join(map(str, _READABLE_VERSIONS))} "
            "-- upgrade it")
    return manifest


def _write_copy(store: ChunkStore, manifest: dict[str, Any], fd: int) -> None:
    read = store.reader()
    with os.fdopen(os.dup(fd), "wb") as f:
        for digest in manifest["chunks"]:
            data = read(digest)
            f.write(data)
            advance(len(data))
    advance(0, 1)


def restore_name(resource: Resource, manifest: dict[str, Any]) -> str:
    """The restored file's name: the database file's own name when the
    resource id is that name or its stem (``orders`` of ``orders.db`` comes
    back as ``orders.db``), else the id; only a plain extension is taken
    from the bank."""
    source = manifest.get("source")
    stem, suffix = os.path.splitext(os.path.basename(source)) if isinstance(source, str) \
        else ("", "")
    if stem == resource.id and _SUFFIX.fullmatch(suffix):
        return resource.id + suffix
    return resource.id


def database_destination(resource: Resource, parameters: Mapping[str, Any],
                         manifest: Mapping[str, Any]) -> str:
    """Where the restore writes the database: ``<target>/<name>`` (see
    :func:`restore_name`), or with ``in_place`` the file it was protected
    from (a symlink there is replaced, never followed).

    Raises
    ------
    LocalPluginError
        If neither ``target`` nor ``in_place`` is given.
    """
    if parameters.get("in_place"):
        return resolve_path(resource)
    if not parameters.get("target"):
        raise LocalPluginError(f"{resource.key}: a restore needs a 'target' folder (--target "
                               "DIR), or 'in_place' (--in-place) to restore where it was")
    return os.path.join(os.path.dirname(restore_destination(resource, parameters)),
                        restore_name(resource, dict(manifest)))


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
    dest = database_destination(resource, parameters, manifest)
    if file_chunks(store_of(checkpoint, resource), dest, manifest) == manifest["chunks"]:
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


def _set_meta(fd: int, manifest: dict[str, Any], parameters: dict[str, Any]) -> None:
    """The database's owner (as root, or when asked), mode and mtime."""
    owners = parameters.get("owners")
    if (os.geteuid() == 0 if owners is None else owners) and "uid" in manifest:
        os.fchown(fd, int(manifest["uid"]), int(manifest["gid"]))
    if isinstance(manifest.get("mode"), int):
        os.fchmod(fd, manifest["mode"] & 0o777)
    if isinstance(manifest.get("mtime_ns"), int):
        os.utime(fd, ns=(manifest["mtime_ns"], manifest["mtime_ns"]))


def file_chunks(store: ChunkStore, path: str, manifest: dict[str, Any]) -> list[str] | None:
    """The chunk names in ``store`` of the file at ``path`` (not through a
    symlink), or None if there is no such regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    size = manifest["chunk_size"]
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
    return {"bytes": manifest["size"], "chunks": len(manifest["chunks"]), "integrity": "ok"}


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


def contents_of(manifest: Mapping[str, Any]) -> list[Item]:
    """The database file of ``manifest`` and its tables (``ls``'s items)."""
    chunks = manifest.get("chunks")
    content = None if not isinstance(chunks, list) else "chunks:" + hashlib.sha256(
        ",".join(map(str, chunks)).encode()).hexdigest()
    size = manifest.get("size")
    mode = manifest.get("mode")
    mtime = manifest.get("mtime_ns")
    source = str(manifest.get("source") or "database")
    items = [Item(".", "database", size=size if isinstance(size, int) else None,
                  mode=mode if isinstance(mode, int) else None,
                  mtime_ns=mtime if isinstance(mtime, int) else None, content=content,
                  info={"source": source})]
    tables = manifest.get("tables")
    if isinstance(tables, Mapping):
        items += [Item(str(name), "table", rows=rows) for name, rows in sorted(tables.items())
                  if isinstance(rows, int)]
    return items
