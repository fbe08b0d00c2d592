"""Protect a SQLite database file with the online backup API.

Resource type ``protectflow::sqlite::Database``; ``extra_info.path`` is the
database file (relative paths resolve as for the fs plugin).

- **protect**: ``prepare_finish`` copies the database with
  ``sqlite3.Connection.backup`` into a local snapshot file -- a consistent
  copy, taken inside a parent application's freeze, while writers may keep
  writing (in WAL mode they are not even blocked); ``main`` checks it with
  ``PRAGMA integrity_check``, stores it in the bank's shared chunk store
  (fixed-size chunks: unchanged pages cost nothing in the next checkpoint)
  and removes the snapshot.
- **restore** writes the database to ``<target>/<resource id>`` (through a
  staging file, checked with ``integrity_check`` before it is renamed into
  place; ``force`` replaces an existing file and its ``-wal``/``-shm``).
- **verify** rebuilds the stored copy in a temporary file and runs
  ``integrity_check`` on it (which reads every chunk and checks its hash).
- **copy** and **delete** handle its chunks as the fs plugin does.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from protectflow.dag.model import Resource
from protectflow.errors import BankError, LocalPluginError
from protectflow.plugins._chunkfiles import store_file
from protectflow.plugins._chunks import ChunkStore
from protectflow.plugins._local import (
    MANIFEST,
    MainHooksPlugin,
    check_destination,
    clear_destination,
    committed_manifest,
    copy_chunks,
    destination_problems,
    get_json,
    local_name,
    object_schema,
    release_chunks,
    require_checkpoint,
    resolve_path,
    restore_destination,
    source_problems,
    store_of,
)
from protectflow.plugins.base import (
    HookArgs,
    HookCheckpoint,
    HookOperation,
    Operation,
)

__all__ = ["DATABASE", "SqliteProtectionPlugin", "integrity_check"]

DATABASE = "protectflow::sqlite::Database"
SNAPSHOT = "snapshot"
DEFAULT_CHUNK_SIZE = 256 << 10

OPTIONS_SCHEMA = object_schema("sqlite protect parameters", {
    "chunk_size": {"type": "integer", "minimum": 4096, "maximum": 64 << 20,
                   "default": DEFAULT_CHUNK_SIZE, "description": "bytes per chunk"},
    "snapshot_dir": {"type": "string", "minLength": 1,
                     "description": "folder for the snapshot between prepare_finish and "
                     "main (default: the system temporary folder)"},
    "busy_timeout": {"type": "number", "minimum": 0, "default": 30,
                     "description": "seconds to wait for a writer's lock"},
})
RESTORE_SCHEMA = object_schema("sqlite restore parameters", {
    "target": {"type": "string", "minLength": 1,
               "description": "folder to restore into: the database goes to <target>/<id>"},
    "force": {"type": "boolean", "default": False,
              "description": "replace an existing <target>/<id> (and its -wal and -shm)"},
}, required=["target"])
VERIFY_SCHEMA = object_schema("sqlite verify parameters", {})
SAVED_INFO_SCHEMA = {"type": "object", "properties": {
    "source": {"type": "string"}, "size": {"type": "integer"},
    "taken_at": {"type": "number"}}}


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


def _check(path: str, what: str) -> None:
    result = integrity_check(path)
    if result != "ok":
        raise LocalPluginError(f"{what}: PRAGMA integrity_check did not return ok: {result}")


def snapshot_path(checkpoint: HookCheckpoint, resource: Resource,
                  parameters: dict[str, Any]) -> str:
    """Where this checkpoint's snapshot of ``resource`` waits for ``main``."""
    folder = parameters.get("snapshot_dir") or tempfile.gettempdir()
    return os.path.join(os.path.abspath(folder),
                        f"protectflow-sqlite-{local_name(checkpoint, resource)}.db")


def take_snapshot(checkpoint: HookCheckpoint, resource: Resource,
                  parameters: dict[str, Any]) -> dict[str, Any]:
    """Copy the database with the backup API into its snapshot file.

    Raises
    ------
    LocalPluginError
        If the database does not exist or cannot be read.
    """
    source = resolve_path(resource)
    if not os.path.isfile(source):
        raise LocalPluginError(f"{resource.key}: no database file at {source}")
    dest = snapshot_path(checkpoint, resource, parameters)
    part = dest + ".part"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(part)
    timeout = float(parameters.get("busy_timeout", 30))
    started = time.time()
    try:
        src = sqlite3.connect(f"file:{quote(source)}?mode=rw", uri=True, timeout=timeout)
        dst = sqlite3.connect(part)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, consistent
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as err:
        raise LocalPluginError(f"{resource.key}: backup of {source} failed: {err}") from err
    os.replace(part, dest)
    taken_at = time.time()
    checkpoint.get_resource_bank_section(resource).update_object(
        SNAPSHOT, {"path": dest, "source": source, "taken_at": taken_at})
    return {"snapshot": dest, "started_at": started, "taken_at": taken_at,
            "size": os.path.getsize(dest)}


def store_snapshot(checkpoint: HookCheckpoint, resource: Resource,
                   parameters: dict[str, Any]) -> dict[str, Any]:
    """Check the snapshot, store it as chunks, commit the manifest; rerunnable.

    Raises
    ------
    LocalPluginError
        If the snapshot is gone (a rerun on another machine) or not intact.
    """
    section = checkpoint.get_resource_bank_section(resource)
    info = get_json(section, SNAPSHOT)
    path = info["path"]
    if not os.path.exists(path):
        if section.has_object(MANIFEST):
            return {"stored": "earlier"}  # an earlier attempt finished the job
        raise LocalPluginError(f"{resource.key}: the snapshot {path} taken in prepare_finish "
                               "is gone; run the protect again")
    _check(path, f"{resource.key}: snapshot {path}")
    chunk_size = int(parameters.get("chunk_size", DEFAULT_CHUNK_SIZE))
    digests, new, new_bytes, size = store_file(store_of(checkpoint, resource), path, chunk_size)
    section.update_object(MANIFEST, {"version": 1, "source": info["source"], "size": size,
                                     "chunk_size": chunk_size, "chunks": digests,
                                     "taken_at": info["taken_at"]})
    os.unlink(path)
    return {"bytes": size, "new_chunks": new, "new_bytes": new_bytes}


def _manifest(checkpoint: HookCheckpoint, resource: Resource) -> dict[str, Any]:
    return committed_manifest(checkpoint.get_resource_bank_section(resource), resource,
                              missing="no copy of it")


def _write_copy(store: ChunkStore, manifest: dict[str, Any], path: str) -> None:
    with open(path, "wb") as f:
        for digest in manifest["chunks"]:
            f.write(store.read(digest))


def restore_database(checkpoint: HookCheckpoint, resource: Resource,
                     parameters: dict[str, Any]) -> str:
    """Write the stored database to ``<target>/<id>``; returns the path.

    Raises
    ------
    LocalPluginError
        If the destination exists (without ``force``) or the copy fails
        ``integrity_check``.
    """
    manifest = _manifest(checkpoint, resource)
    dest = restore_destination(resource, parameters)
    if os.path.isfile(dest) and _file_chunks(store_of(checkpoint, resource), dest,
                                             manifest) == manifest["chunks"]:
        return dest  # restored by an earlier attempt
    force = bool(parameters.get("force", False))
    check_destination(dest, force, resource.key)
    staging = f"{dest}.pf-restore-{checkpoint.id[:12]}"
    try:
        _write_copy(store_of(checkpoint, resource), manifest, staging)
        _check(staging, f"{resource.key}: restored copy")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise
    clear_destination(dest, force, resource.key)
    for suffix in ("-wal", "-shm", "-journal"):  # they belong to the database replaced
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest + suffix)
    os.replace(staging, dest)
    return dest


def _restored(checkpoint: HookCheckpoint | None, resource: Resource, dest: str) -> bool:
    """Whether ``dest`` already holds the database ``checkpoint`` keeps of ``resource``."""
    if checkpoint is None or not os.path.isfile(dest):
        return False
    try:
        manifest = _manifest(checkpoint, resource)
    except (BankError, LocalPluginError):
        return False  # the restore itself will say what is wrong with the checkpoint
    chunks = _file_chunks(store_of(checkpoint, resource), dest, manifest)
    return bool(chunks == manifest["chunks"])


def _file_chunks(store: ChunkStore, path: str, manifest: dict[str, Any]) -> list[str]:
    size = manifest["chunk_size"]
    out = []
    with open(path, "rb") as f:
        while piece := f.read(size):
            out.append(store.chunk_id(piece))
    return out


def _rename_chunks(manifest: dict[str, Any], names: Mapping[str, str]) -> None:
    manifest["chunks"] = [names[d] for d in manifest["chunks"]]


def verify_database(checkpoint: HookCheckpoint, resource: Resource) -> dict[str, Any]:
    """Rebuild the stored copy in a temporary file and check it.

    Raises
    ------
    LocalPluginError
        If it fails ``integrity_check``.
    ChunkError
        If a chunk is missing or corrupt.
    """
    manifest = _manifest(checkpoint, resource)
    with tempfile.TemporaryDirectory(prefix="protectflow-verify-") as tmp:
        path = os.path.join(tmp, "copy.db")
        _write_copy(store_of(checkpoint, resource), manifest, path)
        _check(path, f"{resource.key}: stored copy")
    return {"bytes": manifest["size"], "chunks": len(manifest["chunks"]), "integrity": "ok"}


def delete_database(checkpoint: HookCheckpoint, resource: Resource) -> dict[str, Any]:
    """Release the stored copy's chunks, then its records; rerunnable."""
    section = checkpoint.get_resource_bank_section(resource)
    out = release_chunks(store_of(checkpoint, resource), section,
                         lambda manifest: list(manifest["chunks"]))
    discard_snapshot(checkpoint, resource)
    for key in (MANIFEST, SNAPSHOT):
        with contextlib.suppress(BankError):
            section.delete_object(key)
    return out


def discard_snapshot(checkpoint: HookCheckpoint, resource: Resource) -> bool:
    """Remove a snapshot file left by a protect that did not reach ``main``."""
    try:
        path = get_json(checkpoint.get_resource_bank_section(resource), SNAPSHOT)["path"]
    except (BankError, KeyError, TypeError):
        return False
    removed = False
    for name in (path, path + ".part"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
            removed = True
    return removed


# -- the hooks: each takes the call's HookArgs ---------------------------------------
def _checkpoint(args: HookArgs) -> HookCheckpoint:
    return require_checkpoint(args.checkpoint, args.resource)


def _snapshot(args: HookArgs) -> dict[str, Any]:
    return take_snapshot(_checkpoint(args), args.resource, args.parameters)


def _store(args: HookArgs) -> dict[str, Any]:
    return store_snapshot(_checkpoint(args), args.resource, args.parameters)


def _restore(args: HookArgs) -> dict[str, Any]:
    dest = restore_database(_checkpoint(args), args.resource, args.parameters)
    args.publish(dest)
    return {"path": dest}


def _verify(args: HookArgs) -> dict[str, Any]:
    return verify_database(_checkpoint(args), args.resource)


def _copy(args: HookArgs) -> dict[str, Any]:
    checkpoint = _checkpoint(args)
    return copy_chunks(checkpoint, args.resource, _manifest(checkpoint, args.resource)["chunks"],
                       args.kwargs, rename=_rename_chunks)


def _delete(args: HookArgs) -> dict[str, Any]:
    return delete_database(_checkpoint(args), args.resource)


class SqliteProtectOperation(HookOperation):
    """Snapshot in prepare_finish, store in main."""

    def __init__(self) -> None:
        super().__init__({"prepare_finish": _snapshot, "main": _store})


class SqliteProtectionPlugin(MainHooksPlugin):
    """SQLite database files, copied online and stored as chunks."""

    supported_resource_types: ClassVar[tuple[str, ...]] = (DATABASE,)
    options_schema = OPTIONS_SCHEMA
    restore_schema = RESTORE_SCHEMA
    verify_schema = VERIFY_SCHEMA
    saved_info_schema = SAVED_INFO_SCHEMA

    main_hooks = {"restore": _restore, "verify": _verify, "copy": _copy, "delete": _delete}

    def get_protect_operation(self, resource: Resource) -> Operation:
        return SqliteProtectOperation()

    def preflight(self, operation: str, resource: Resource, parameters: Mapping[str, Any], *,
                  checkpoint: HookCheckpoint | None = None) -> list[str]:
        """A protect needs the database file; a restore, a destination that
        is free (or ``force``, or already this database)."""
        if operation == "protect":
            return source_problems(resource, "file")
        if operation == "restore":
            return destination_problems(resource, parameters,
                                        lambda dest: _restored(checkpoint, resource, dest))
        return []

    def on_failure(self, checkpoint: HookCheckpoint | None, resource: Resource,
                   context: Any, parameters: dict[str, Any], **kwargs: Any) -> Any:
        """Remove the snapshot file of a protect that failed before storing it.

        Raises
        ------
        LocalPluginError
            If there is no checkpoint.
        """
        checkpoint = require_checkpoint(checkpoint, resource)
        return {"discarded": discard_snapshot(checkpoint, resource)}

    @classmethod
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        manifest = get_json(metadata_store, MANIFEST)
        return {k: manifest[k] for k in ("source", "size", "taken_at")}
