"""Protect a local directory tree into the bank's shared chunk store.

Resource type ``protectflow::fs::Directory``; ``extra_info.path`` is the
folder (relative paths resolve against ``extra_info.base_dir``, else the
current directory).

- **protect** stores each file as fixed-size chunks named by their SHA-256
  (``chunks/<h[:2]>/<h>``, shared by every checkpoint of the bank, created
  if absent) and a manifest -- paths, modes, mtimes, symlinks, empty
  folders -- in the checkpoint's resource section. A file whose size, mtime,
  ctime and inode match the previous checkpoint of the same resource is not
  read again: its chunks are referenced (and re-stored from the file only if
  the bank lost them). The work runs in ``prepare_finish`` by default, so a
  parent application's freeze covers it, or in ``main`` (``snapshot_hook``).
- **restore** rebuilds the tree at ``<target>/<resource id>``: into a staging
  folder beside it, then renamed into place. A non-empty destination is
  refused unless ``force`` (which replaces it); a destination that already
  matches the manifest is left alone, so a rerun after a crash succeeds.
- **verify** reads every chunk the manifest names and checks its hash.
- **copy** (to another bank) gives the target checkpoint the chunks its
  manifest names, storing those the target bank lacks.
- **delete** drops the checkpoint's chunk references and the chunks nobody
  else references, then the manifest (see :mod:`._chunks` for the protocol
  and its guarantee under concurrent deletes and protects).

Why fixed-size chunks rather than content-defined ones: chunking is per
file, so an edit re-stores chunks of that file only; an in-place edit (a
byte changed, a database page rewritten) costs one chunk, and only an
insertion in a large file re-stores the rest of that file. Content-defined
chunking would also cover insertions, but a rolling hash in pure Python
runs at a few tens of MB/s against SHA-256's GB/s -- fixed-size is what
keeps protect at disk speed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from protectflow.bank import Checkpoint
from protectflow.dag.model import Resource
from protectflow.errors import BankError
from protectflow.plugins import _tree
from protectflow.plugins._chunks import (
    ChunkError,
    ChunkStore,
    copy_all,
    owner_id,
    release_all,
    reuse_file,
    sha256,
    store_file,
    verify_all,
)
from protectflow.plugins._local import (
    LocalPluginError,
    bank_of,
    clear_destination,
    get_json,
    object_schema,
    resolve_path,
    restore_destination,
    section_of,
)
from protectflow.plugins.base import Operation, ProtectionPlugin

__all__ = ["DIRECTORY", "FsProtectionPlugin"]

DIRECTORY = "protectflow::fs::Directory"
MANIFEST = "manifest"
MANIFEST_VERSION = 1
DEFAULT_CHUNK_SIZE = 1 << 20
_LATEST = "plugins/fs/latest/"

_WORKERS = {"type": "integer", "minimum": 1, "maximum": 64, "default": 4,
            "description": "threads reading, hashing and storing chunks"}
_PATTERNS = {"type": "array", "items": {"type": "string", "minLength": 1}, "default": []}
OPTIONS_SCHEMA = object_schema("fs protect parameters", {
    "include": {**_PATTERNS, "description": "keep only files matching one of these globs "
                "(a pattern without '/' matches the name at any depth)"},
    "exclude": {**_PATTERNS, "description": "leave out files and folders matching these"},
    "chunk_size": {"type": "integer", "minimum": 4096, "maximum": 64 << 20,
                   "default": DEFAULT_CHUNK_SIZE, "description": "bytes per chunk"},
    "snapshot_hook": {"enum": ["prepare_finish", "main"], "default": "prepare_finish",
                      "description": "read the tree in prepare_finish (inside a parent's "
                      "freeze) or in main (shorter freeze, no point-in-time copy)"},
    "workers": _WORKERS,
})
RESTORE_SCHEMA = object_schema("fs restore parameters", {
    "target": {"type": "string", "minLength": 1,
               "description": "folder to restore into: the tree goes to <target>/<id>"},
    "force": {"type": "boolean", "default": False,
              "description": "replace a non-empty <target>/<id>"},
    "workers": _WORKERS,
}, required=["target"])
VERIFY_SCHEMA = object_schema("fs verify parameters", {"workers": _WORKERS})
SAVED_INFO_SCHEMA = {
    "type": "object",
    "properties": {"root": {"type": "string"}, "files": {"type": "integer"},
                   "bytes": {"type": "integer"}, "chunk_size": {"type": "integer"}},
}


def _store(checkpoint: Any, resource: Resource) -> ChunkStore:
    return ChunkStore(bank_of(checkpoint, resource), owner_id(checkpoint.id, resource.key))


def _latest_key(resource: Resource) -> str:
    return _LATEST + sha256(resource.key.encode())[:32]


def read_manifest(section: Any, resource: Resource) -> dict[str, Any]:
    """The manifest a protect committed for ``resource``.

    Raises
    ------
    LocalPluginError
        If the checkpoint holds none.
    """
    try:
        manifest: dict[str, Any] = get_json(section, MANIFEST)
    except BankError:
        raise LocalPluginError(f"{resource.key}: the checkpoint holds no manifest for it; "
                               "its protect did not finish") from None
    return manifest


def _previous_files(bank: Any, resource: Resource, chunk_size: int) -> dict[str, Any]:
    """Path -> file entry of the last manifest committed for ``resource``."""
    try:
        latest = bank.get_object(_latest_key(resource))
        old = Checkpoint(bank, latest["checkpoint"]).get_resource_bank_section(resource)
        manifest = get_json(old, MANIFEST)
    except (BankError, KeyError, TypeError):
        return {}
    if manifest.get("chunk_size") != chunk_size:
        return {}
    return {e["path"]: e for e in manifest["entries"] if e["type"] == "file"}


def _unchanged(entry: dict[str, Any], old: dict[str, Any] | None) -> bool:
    return old is not None and all(
        old.get(k) == entry[k] for k in ("size", "mtime_ns", "ctime_ns", "ino", "mode"))


def protect_tree(checkpoint: Any, resource: Resource, parameters: dict[str, Any],
                 log: Any = None) -> dict[str, Any]:
    """Store the tree of ``resource`` in ``checkpoint``; returns statistics.

    Raises
    ------
    LocalPluginError
        If the path is not a folder.
    """
    root = resolve_path(resource)
    if not os.path.isdir(root):
        raise LocalPluginError(f"{resource.key}: {root} is not a folder")
    section = section_of(checkpoint, resource)
    store = _store(checkpoint, resource)
    chunk_size = int(parameters.get("chunk_size", DEFAULT_CHUNK_SIZE))
    started = time.time()
    previous = _previous_files(store.bank, resource, chunk_size)
    skipped: list[str] = []
    entries = _tree.scan(root, parameters.get("include", ()), parameters.get("exclude", ()),
                         skipped.append)
    if skipped and log is not None:
        log.warning(f"skipped {len(skipped)} special files, e.g. {skipped[0]}")

    def one(entry: dict[str, Any]) -> tuple[int, int, bool]:
        return _store_entry(store, root, entry, previous.get(entry["path"]), chunk_size)

    files = [e for e in entries if e["type"] == "file"]
    with ThreadPoolExecutor(max_workers=int(parameters.get("workers", 4))) as pool:
        results = list(pool.map(one, files))
    vanished = {e["path"] for e, r in zip(files, results, strict=True) if r[2]}
    entries = [e for e in entries if e["path"] not in vanished]
    manifest = {"version": MANIFEST_VERSION, "root": root, "chunk_size": chunk_size,
                "checkpoint": checkpoint.id, "resource": resource.key, "entries": entries}
    section.update_object(MANIFEST, manifest)  # the commit: every ref exists by now
    store.bank.update_object(_latest_key(resource), {"checkpoint": checkpoint.id})
    return {"files": len(files) - len(vanished), "entries": len(entries),
            "bytes": sum(e["size"] for e in entries if e["type"] == "file"),
            "new_chunks": sum(r[0] for r in results), "new_bytes": sum(r[1] for r in results),
            "reused_files": sum(1 for e in files if _unchanged(e, previous.get(e["path"]))),
            "started_at": started, "finished_at": time.time()}


def _store_entry(store: ChunkStore, root: str, entry: dict[str, Any],
                 old: dict[str, Any] | None, chunk_size: int) -> tuple[int, int, bool]:
    """Chunk one file into the store; ``(new chunks, new bytes, vanished)``."""
    path = os.path.join(root, entry["path"])
    if old is not None and _unchanged(entry, old):
        with contextlib.suppress(ChunkError, OSError):
            new, new_bytes = reuse_file(store, path, old["chunks"], chunk_size)
            entry["chunks"] = old["chunks"]
            return new, new_bytes, False
    try:
        digests, new, new_bytes, size = store_file(store, path, chunk_size)
    except FileNotFoundError:
        return 0, 0, True  # deleted since the scan: not in this checkpoint
    entry["chunks"] = digests
    entry["size"] = size  # what was read, should the file have changed since the scan
    return new, new_bytes, False


def restore_tree(checkpoint: Any, resource: Resource, parameters: dict[str, Any]) -> str:
    """Rebuild the tree of ``resource`` at ``<target>/<id>``; returns that path.

    Raises
    ------
    LocalPluginError
        If the destination is not empty and ``force`` is not set.
    ChunkError
        If a chunk is missing or corrupt.
    """
    manifest = read_manifest(section_of(checkpoint, resource), resource)
    dest = restore_destination(resource, parameters)
    entries = manifest["entries"]
    if _already_restored(dest, entries):
        return dest
    force = bool(parameters.get("force", False))
    if os.path.lexists(dest) and not force:
        clear_destination(dest, False, resource.key)  # refuses unless empty
    store = _store(checkpoint, resource)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    staging = os.path.join(os.path.dirname(dest),
                           f".{os.path.basename(dest)}.pf-restore-{checkpoint.id[:12]}")
    if os.path.lexists(staging):  # a crashed earlier attempt
        shutil.rmtree(staging)
    _tree.build_tree(staging, entries, store.read, workers=int(parameters.get("workers", 4)))
    clear_destination(dest, force, resource.key)
    os.rename(staging, dest)
    return dest


def _already_restored(dest: str, entries: list[dict[str, Any]]) -> bool:
    if not os.path.isdir(dest) or os.path.islink(dest):
        return False
    return _tree.comparable(_tree.scan(dest)) == _tree.comparable(entries)


def manifest_chunks(manifest: dict[str, Any]) -> list[str]:
    """Every chunk digest a manifest names (with repeats)."""
    return [d for e in manifest["entries"] if e["type"] == "file" for d in e["chunks"]]


def verify_resource(checkpoint: Any, resource: Resource,
                    parameters: dict[str, Any]) -> dict[str, Any]:
    """Re-read and hash every chunk of the resource's manifest.

    Raises
    ------
    ChunkError
        If a chunk is missing or corrupt.
    """
    manifest = read_manifest(section_of(checkpoint, resource), resource)
    chunks, nbytes = verify_all(_store(checkpoint, resource), manifest_chunks(manifest),
                                workers=int(parameters.get("workers", 4)))
    return {"chunks": chunks, "bytes": nbytes}


def delete_resource(checkpoint: Any, resource: Resource) -> dict[str, Any]:
    """Release the resource's chunks, then its manifest; safe to rerun."""
    section = section_of(checkpoint, resource)
    store = _store(checkpoint, resource)
    try:
        digests = manifest_chunks(get_json(section, MANIFEST))
    except BankError:  # no manifest: its protect died before the commit
        digests = store.orphan_refs()
    deleted = release_all(store, digests)
    with contextlib.suppress(BankError):
        latest = store.bank.get_object(_latest_key(resource))
        if latest.get("checkpoint") == checkpoint.id:
            store.bank.delete_object(_latest_key(resource))
    with contextlib.suppress(BankError):
        section.delete_object(MANIFEST)
    return {"released": len(set(digests)), "deleted_chunks": deleted}


def copy_chunks(checkpoint: Any, resource: Resource, digests: list[str],
                kwargs: dict[str, Any]) -> dict[str, Any]:
    """Give the copy's target checkpoint (``kwargs["target_checkpoint"]``, in
    another bank) the chunks ``digests``; the framework copies the manifest.

    Raises
    ------
    LocalPluginError
        If there is no target checkpoint.
    """
    target = kwargs.get("target_checkpoint")
    if target is None:
        raise LocalPluginError(f"{resource.key}: copy needs a target_checkpoint")
    copied = copy_all(_store(checkpoint, resource), _store(target, resource), digests)
    return {"chunks": len(set(digests)), "copied_chunks": copied}


def _copy(checkpoint: Any, resource: Resource, parameters: dict[str, Any],
          kwargs: dict[str, Any]) -> dict[str, Any]:
    manifest = read_manifest(section_of(checkpoint, resource), resource)
    return copy_chunks(checkpoint, resource, manifest_chunks(manifest), kwargs)


class _Hook(Operation):
    """An Operation running one function in one hook."""

    def __init__(self, hook: str, run: Callable[..., Any]) -> None:
        self.hook = hook
        self.run = run

    def _maybe(self, hook: str, checkpoint: Any, resource: Resource,
               parameters: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        if hook != self.hook:
            return None
        return self.run(checkpoint, resource, parameters, kwargs)

    def on_prepare_finish(self, checkpoint: Any, resource: Resource, context: Any,
                          parameters: dict[str, Any], **kwargs: Any) -> Any:
        return self._maybe("prepare_finish", checkpoint, resource, parameters, kwargs)

    def on_main(self, checkpoint: Any, resource: Resource, context: Any,
                parameters: dict[str, Any], **kwargs: Any) -> Any:
        return self._maybe("main", checkpoint, resource, parameters, kwargs)


class FsProtectOperation(Operation):
    """Protect in ``prepare_finish`` or ``main``, as ``snapshot_hook`` says."""

    def _run(self, hook: str, checkpoint: Any, resource: Resource,
             parameters: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        if parameters.get("snapshot_hook", "prepare_finish") != hook:
            return None
        return protect_tree(checkpoint, resource, parameters, kwargs.get("operation_log"))

    def on_prepare_finish(self, checkpoint: Any, resource: Resource, context: Any,
                          parameters: dict[str, Any], **kwargs: Any) -> Any:
        return self._run("prepare_finish", checkpoint, resource, parameters, kwargs)

    def on_main(self, checkpoint: Any, resource: Resource, context: Any,
                parameters: dict[str, Any], **kwargs: Any) -> Any:
        return self._run("main", checkpoint, resource, parameters, kwargs)


def _restore(checkpoint: Any, resource: Resource, parameters: dict[str, Any],
             kwargs: dict[str, Any]) -> dict[str, Any]:
    dest = restore_tree(checkpoint, resource, parameters)
    new_resources = kwargs.get("new_resources")
    if new_resources is not None:
        new_resources[resource.key] = dest
    return {"path": dest}


class FsProtectionPlugin(ProtectionPlugin):
    """Local directory trees, chunked and deduplicated in the bank."""

    supported_resource_types: ClassVar[tuple[str, ...]] = (DIRECTORY,)

    def get_protect_operation(self, resource: Resource) -> Operation:
        return FsProtectOperation()

    def get_restore_operation(self, resource: Resource) -> Operation:
        return _Hook("main", _restore)

    def get_verify_operation(self, resource: Resource) -> Operation:
        return _Hook("main", lambda c, r, p, k: verify_resource(c, r, p))

    def get_copy_operation(self, resource: Resource) -> Operation:
        return _Hook("main", _copy)

    def get_delete_operation(self, resource: Resource) -> Operation:
        return _Hook("main", lambda c, r, p, k: delete_resource(c, r))

    @classmethod
    def get_options_schema(cls, resource_type: str) -> dict[str, Any]:
        return OPTIONS_SCHEMA

    @classmethod
    def get_restore_schema(cls, resource_type: str) -> dict[str, Any]:
        return RESTORE_SCHEMA

    @classmethod
    def get_verify_schema(cls, resource_type: str) -> dict[str, Any]:
        return VERIFY_SCHEMA

    @classmethod
    def get_saved_info_schema(cls, resource_type: str) -> dict[str, Any]:
        return SAVED_INFO_SCHEMA

    @classmethod
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        manifest = get_json(metadata_store, MANIFEST)
        files = [e for e in manifest["entries"] if e["type"] == "file"]
        return {"root": manifest["root"], "files": len(files),
                "bytes": sum(e["size"] for e in files), "chunk_size": manifest["chunk_size"]}
