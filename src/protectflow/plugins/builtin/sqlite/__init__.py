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
- **restore** writes the database to ``<target>/<name>``, its own file name
  when the resource id is that name's stem, else the id (through a staging
  file made exclusively with a random name, checked with ``integrity_check``
  before it is renamed into place; ``force`` replaces an existing file and
  its ``-wal``/``-shm``), with its mode, mtime and, as root, owner.

The snapshot waits in ``snapshot_dir`` or a private per-user folder
(``<tmp>/protectflow-<uid>``, 0700, refused if someone else owns it), 0600;
its path is derived from the parameters, never read back from the bank.
- **verify** rebuilds the stored copy in a temporary file and runs
  ``integrity_check`` on it (which reads every chunk and checks its hash).
- **copy** and **delete** handle its chunks as the fs plugin does.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from protectflow.bank.chunks.refs import manifest_names
from protectflow.dag.model import Resource
from protectflow.dag.outcomes import STATS_KEY, ResourceStats
from protectflow.errors import BankError, LocalPluginError
from protectflow.plugins.base import (
    HookArgs,
    HookCheckpoint,
    HookOperation,
    Operation,
)
from protectflow.plugins.builtin._chunkfiles import store_file
from protectflow.plugins.builtin._local import (
    ALLOW_OTHER_OWNER,
    MANIFEST,
    MainHooksPlugin,
    copy_chunks,
    destination_problems,
    get_json,
    local_name,
    object_schema,
    release_chunks,
    require_checkpoint,
    resolve_path,
    source_problems,
    store_of,
)
from protectflow.plugins.builtin._private import private_dir
from protectflow.plugins.builtin.sqlite._copy import (
    check,
    contents_of,
    database_destination,
    file_chunks,
    integrity_check,
    read_manifest,
    restore_database,
    table_rows,
    verify_database,
)
from protectflow.plugins.builtin.sqlite._records import FileMeta, SnapshotInfo, SqliteManifest
from protectflow.plugins.contents import Item

__all__ = ["DATABASE", "SqliteProtectionPlugin", "integrity_check", "restore_database",
           "verify_database"]

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
               "description": "folder to restore into: the database goes to <target>/<id> "
               "(required unless in_place)"},
    "in_place": {"type": "boolean", "default": False,
                 "description": "restore over the database file it was protected from "
                 "(refused, unless force, when that file holds something else)"},
    "force": {"type": "boolean", "default": False,
              "description": "replace an existing <target>/<id> (and its -wal and -shm)"},
    "owners": {"type": "boolean", "description": "restore the database's owner (numeric uid "
               "and gid); default: when running as root"},
    "allow_other_owner": ALLOW_OTHER_OWNER,
})
VERIFY_SCHEMA = object_schema("sqlite verify parameters", {})
SAVED_INFO_SCHEMA = {"type": "object", "properties": {
    "source": {"type": "string"}, "size": {"type": "integer"},
    "taken_at": {"type": "number"}}}


def snapshot_path(checkpoint: HookCheckpoint, resource: Resource,
                  parameters: dict[str, Any]) -> str:
    """Where this checkpoint's snapshot of ``resource`` waits for ``main``:
    derived from the operator's parameters, never read from the bank.

    Raises
    ------
    LocalPluginError
        If the default folder (private, per user) is someone else's.
    """
    folder = parameters.get("snapshot_dir") or snapshot_dir()
    return os.path.join(os.path.abspath(folder),
                        f"protectflow-sqlite-{local_name(checkpoint, resource)}.db")


def snapshot_dir() -> str:
    """``<temporary folder>/protectflow-<uid>``, private as
    :func:`._private.private_dir` makes and checks it. Not the per-user state
    folder the app plugin uses: that is often a small in-memory file system,
    and a snapshot is a whole database.

    Raises
    ------
    LocalPluginError
        If it or a folder above it could be changed by another user.
    """
    return private_dir(os.path.join(tempfile.gettempdir(), f"protectflow-{os.geteuid()}"))


def _create_private(path: str) -> None:
    """Create ``path`` empty, 0600, exclusively, not through a symlink."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600))


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
    _create_private(part)  # sqlite would make it 0644 (and follow a planted link)
    timeout = float(parameters.get("busy_timeout", 30))
    started = time.time()
    st = os.stat(source)
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
    checkpoint.get_resource_bank_section(resource).update_object(SNAPSHOT, SnapshotInfo(
        source=source, taken_at=taken_at, meta=FileMeta(
            mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
            mtime_ns=st.st_mtime_ns)).to_json())
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
    info = SnapshotInfo.from_json(get_json(section, SNAPSHOT), what=resource.key)
    path = snapshot_path(checkpoint, resource, parameters)
    if not os.path.exists(path):
        if section.has_object(MANIFEST):
            return {"stored": "earlier"}  # an earlier attempt finished the job
        raise LocalPluginError(f"{resource.key}: the snapshot {path} taken in prepare_finish "
                               "is gone; run the protect again")
    check(path, f"{resource.key}: snapshot {path}")
    chunk_size = int(parameters.get("chunk_size", DEFAULT_CHUNK_SIZE))
    tables = table_rows(path)
    store = store_of(checkpoint, resource)
    digests, new, new_bytes, size = store_file(store, path, chunk_size)
    section.update_object(MANIFEST, SqliteManifest(
        source=info.source, size=size, chunk_size=chunk_size, chunks=tuple(digests),
        taken_at=info.taken_at, meta=info.meta, tables=tuple(sorted(tables.items()))).to_json())
    os.unlink(path)
    return {"bytes": size, "new_chunks": new, "new_bytes": new_bytes,
            STATS_KEY: _stats(size, new, len(digests), store.added_bytes).to_json()}


def _stats(size: int, new: int, chunks: int, added: int) -> ResourceStats:
    """The database file as one file: new when every chunk of it is new,
    unmodified when none is, else changed."""
    kind = "new" if new and new == chunks else "unmodified" if not new else "changed"
    return ResourceStats(**{f"files_{kind}": 1, f"bytes_{kind}": size},
                         bytes_read=size, bytes_added=added)


def delete_database(checkpoint: HookCheckpoint, resource: Resource,
                    parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Release the stored copy's chunks, then its records; rerunnable."""
    section = checkpoint.get_resource_bank_section(resource)
    out = release_chunks(store_of(checkpoint, resource), section, _chunks_of)
    with contextlib.suppress(LocalPluginError):  # no private folder: no snapshot in it
        discard_snapshot(checkpoint, resource, parameters or {})
    for key in (MANIFEST, SNAPSHOT):
        with contextlib.suppress(BankError):
            section.delete_object(key)
    return out


def _restore_problems(checkpoint: HookCheckpoint | None, resource: Resource,
                      parameters: Mapping[str, Any]) -> list[str]:
    """:func:`destination_problems` at the path the restore will write: the
    database's own file name, which the checkpoint's manifest knows."""
    manifest: SqliteManifest | None = None
    dest = None
    if checkpoint is not None:
        with contextlib.suppress(BankError, LocalPluginError):
            manifest = read_manifest(checkpoint, resource)
            dest = database_destination(resource, parameters, manifest)
    if not parameters.get("target") and not parameters.get("in_place"):
        return [f"{resource.key}: a restore needs a 'target' folder (--target DIR), or "
                "'in_place' (--in-place) to restore where it was"]

    def restored(path: str) -> bool:
        if checkpoint is None or manifest is None:
            return False
        chunks = file_chunks(store_of(checkpoint, resource), path, manifest)
        return chunks == list(manifest.chunks)

    return destination_problems(resource, parameters, restored, dest=dest)


def _rename_chunks(manifest: object, names: Mapping[str, str]) -> dict[str, object]:
    return SqliteManifest.from_json(manifest, what="manifest").renamed(names).to_json()


def _chunks_of(manifest: object) -> list[str]:
    """The chunks a stored manifest names: read as a :class:`SqliteManifest`,
    or -- one that is refused, which a delete must still release -- as any
    manifest's JSON is."""
    try:
        return list(SqliteManifest.from_json(manifest, what="manifest").chunks)
    except LocalPluginError:
        return list(manifest_names(manifest))


def discard_snapshot(checkpoint: HookCheckpoint, resource: Resource,
                     parameters: dict[str, Any]) -> bool:
    """Remove a snapshot file left by a protect that did not reach ``main``
    (where ``parameters`` put it: the path is never read from the bank).

    Raises
    ------
    LocalPluginError
        If the default snapshot folder is not this user's private one.
    """
    path = snapshot_path(checkpoint, resource, parameters)
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


def _restore_main(args: HookArgs) -> dict[str, Any]:
    dest = restore_database(_checkpoint(args), args.resource, args.parameters)
    args.publish(dest)
    return {"path": dest}


def _verify_main(args: HookArgs) -> dict[str, Any]:
    return verify_database(_checkpoint(args), args.resource)


def _copy_main(args: HookArgs) -> dict[str, Any]:
    checkpoint = _checkpoint(args)
    chunks = list(read_manifest(checkpoint, args.resource).chunks)
    return copy_chunks(checkpoint, args.resource, chunks, args.kwargs, rename=_rename_chunks)


def _delete_main(args: HookArgs) -> dict[str, Any]:
    return delete_database(_checkpoint(args), args.resource, args.parameters)


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

    main_hooks = {"restore": _restore_main, "verify": _verify_main, "copy": _copy_main,
                  "delete": _delete_main}

    def get_protect_operation(self, resource: Resource) -> Operation:
        return SqliteProtectOperation()

    def preflight(self, operation: str, resource: Resource, parameters: Mapping[str, Any], *,
                  checkpoint: HookCheckpoint | None = None) -> list[str]:
        """A protect needs the database file; a restore, a destination that
        is free (or ``force``, or already this database)."""
        if operation == "protect":
            return source_problems(resource, "file")
        if operation == "restore":
            return _restore_problems(checkpoint, resource, parameters)
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
        return {"discarded": discard_snapshot(checkpoint, resource, parameters)}

    @classmethod
    def get_contents(cls, metadata_store: Any, resource: Resource) -> list[Item]:
        """The database file, and its tables with their row counts (a
        checkpoint made before protectflow counted them lists the file alone)."""
        return contents_of(SqliteManifest.from_json(get_json(metadata_store, MANIFEST),
                                                    what=resource.key))

    @classmethod
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        manifest = SqliteManifest.from_json(get_json(metadata_store, MANIFEST),
                                            what=resource.key)
        return {"source": manifest.source, "size": manifest.size,
                "taken_at": manifest.taken_at}
