"""Protect a local directory tree into the bank's shared chunk store.

Resource type ``protectflow::fs::Directory``; ``extra_info.path`` is the
folder (relative paths resolve against ``extra_info.base_dir``, else the
current directory).

- **protect** stores each file as fixed-size chunks named by their SHA-256
  (``chunks/<h[:2]>/<h>``, shared by every checkpoint of the bank, created
  if absent; small files are packed several to a chunk, see below) and a
  manifest -- paths, modes, mtimes, symlinks, empty folders -- in the
  checkpoint's resource section. A file whose size, mtime, ctime and inode
  match the previous checkpoint of the same resource is not read again: its
  chunks (or pack slice) are referenced (and re-stored from the file only if
  the bank lost them). Chunks and refs are written without a per-object
  fsync; the bank is synced every quarter second while the workers run (so
  the disk writes as they hash) and once more before the manifest commits.
  The work runs in ``prepare_finish`` by default, so a parent application's
  freeze covers it, or in ``main`` (``snapshot_hook``).
- **restore** rebuilds the tree at ``<target>/<resource id>``: into a staging
  folder beside it, then renamed into place. A non-empty destination is
  refused unless ``force`` (which replaces it); a destination that already
  matches the manifest is left alone, so a rerun after a crash succeeds.
- **verify** reads every chunk the manifest names and checks its hash, and
  the hash of each packed file's slice.
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

Packs: a chunk costs a few inodes (the chunk, its ``refs/`` folder), which
dominates a first protect of many small files. So files under a quarter of
``pack_size`` (and under ``chunk_size``) that need storing are concatenated,
in path order, into packs of about ``pack_size`` bytes; a pack is a chunk
like any other (named by the hash of its bytes, referenced, released and
deleted as one), and the manifest gives each such file its ``pack``,
``offset``, ``length`` and ``sha256``. Dedup: an unchanged file (stat
match) keeps its previous entry, pack reference included, so a second
protect of an unchanged tree writes no chunk; changed small files go
together into new packs (a one-byte change writes one small pack). The cost:
a pack lives while any checkpoint still names one of its files, and a copy
of the tree elsewhere dedups against packs only where the same files fall
into the same packs (the same sorted run of changed small files).
Manifest version 1 (no packs) is still read; a newer one is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping
from typing import Any, ClassVar

from protectflow.dag.model import Resource
from protectflow.errors import BankError, LocalPluginError
from protectflow.plugins import _tree
from protectflow.plugins._chunkfiles import verify_all
from protectflow.plugins._fsprotect import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PACK_SIZE,
    latest_key,
    protect_tree,
    read_manifest,
)
from protectflow.plugins._local import (
    MANIFEST,
    MainHooksPlugin,
    check_destination,
    clear_destination,
    copy_chunks,
    destination_problems,
    get_json,
    object_schema,
    release_chunks,
    require_checkpoint,
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

__all__ = ["DIRECTORY", "FsProtectionPlugin"]

DIRECTORY = "protectflow::fs::Directory"
_WORKERS = {"type": "integer", "minimum": 1, "maximum": 64, "default": 4,
            "description": "threads reading, hashing and storing chunks"}
_PATTERNS = {"type": "array", "items": {"type": "string", "minLength": 1}, "default": []}
OPTIONS_SCHEMA = object_schema("fs protect parameters", {
    "include": {**_PATTERNS, "description": "keep only files matching one of these globs "
                "(a pattern without '/' matches the name at any depth)"},
    "exclude": {**_PATTERNS, "description": "leave out files and folders matching these"},
    "chunk_size": {"type": "integer", "minimum": 4096, "maximum": 64 << 20,
                   "default": DEFAULT_CHUNK_SIZE, "description": "bytes per chunk"},
    "pack_size": {"type": "integer", "minimum": 0, "maximum": 64 << 20,
                  "default": DEFAULT_PACK_SIZE,
                  "description": "bytes per pack of small files (files under a quarter "
                  "of it are packed together into one chunk); 0: no packing"},
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


def restore_tree(checkpoint: HookCheckpoint, resource: Resource,
                 parameters: dict[str, Any]) -> str:
    """Rebuild the tree of ``resource`` at ``<target>/<id>``; returns that path.

    Raises
    ------
    LocalPluginError
        If the destination is not empty and ``force`` is not set.
    ChunkError
        If a chunk is missing or corrupt.
    """
    manifest = read_manifest(checkpoint.get_resource_bank_section(resource), resource)
    dest = restore_destination(resource, parameters)
    entries = manifest["entries"]
    if _already_restored(dest, entries):
        return dest
    force = bool(parameters.get("force", False))
    check_destination(dest, force, resource.key)
    staging = os.path.join(os.path.dirname(dest),
                           f".{os.path.basename(dest)}.pf-restore-{checkpoint.id[:12]}")
    if os.path.lexists(staging):  # a crashed earlier attempt
        shutil.rmtree(staging)
    _tree.build_tree(staging, entries, store_of(checkpoint, resource).read,
                     workers=int(parameters.get("workers", 4)))
    clear_destination(dest, force, resource.key)
    os.rename(staging, dest)
    return dest


def _restored(checkpoint: HookCheckpoint | None, resource: Resource, dest: str) -> bool:
    """Whether ``dest`` already holds the tree ``checkpoint`` keeps of ``resource``."""
    if checkpoint is None:
        return False
    try:
        manifest = read_manifest(checkpoint.get_resource_bank_section(resource), resource)
    except (BankError, LocalPluginError):
        return False  # the restore itself will say what is wrong with the checkpoint
    return _already_restored(dest, manifest["entries"])


def _already_restored(dest: str, entries: list[dict[str, Any]]) -> bool:
    if not os.path.isdir(dest) or os.path.islink(dest):
        return False
    return _tree.comparable(_tree.scan(dest)) == _tree.comparable(entries)


def manifest_chunks(manifest: dict[str, Any]) -> list[str]:
    """Every chunk digest a manifest names, packs included (with repeats)."""
    return [d for e in manifest["entries"] if e["type"] == "file"
            for d in (e["chunks"] if "chunks" in e else (e["pack"],))]


def manifest_slices(manifest: dict[str, Any]) -> dict[str, list[tuple[int, int, str, str]]]:
    """Pack digest -> ``(offset, length, sha256, path)`` of each file in it."""
    slices: dict[str, list[tuple[int, int, str, str]]] = {}
    for e in manifest["entries"]:
        if e["type"] == "file" and "pack" in e:
            slices.setdefault(e["pack"], []).append(
                (e["offset"], e["length"], e["sha256"], e["path"]))
    return slices


def verify_resource(checkpoint: HookCheckpoint, resource: Resource,
                    parameters: dict[str, Any]) -> dict[str, Any]:
    """Re-read and hash every chunk of the resource's manifest, and every
    packed file's slice of its pack.

    Raises
    ------
    ChunkError
        If a chunk is missing or corrupt.
    """
    manifest = read_manifest(checkpoint.get_resource_bank_section(resource), resource)
    chunks, nbytes = verify_all(store_of(checkpoint, resource), manifest_chunks(manifest),
                                workers=int(parameters.get("workers", 4)),
                                slices=manifest_slices(manifest))
    return {"chunks": chunks, "bytes": nbytes}


def delete_resource(checkpoint: HookCheckpoint, resource: Resource) -> dict[str, Any]:
    """Release the resource's chunks, then its manifest; safe to rerun."""
    section = checkpoint.get_resource_bank_section(resource)
    store = store_of(checkpoint, resource)
    out = release_chunks(store, section, manifest_chunks)
    with contextlib.suppress(BankError):
        latest = store.bank.get_object(latest_key(resource))
        if latest.get("checkpoint") == checkpoint.id:
            store.bank.delete_object(latest_key(resource))
    with contextlib.suppress(BankError):
        section.delete_object(MANIFEST)
    return out


def rename_chunks(manifest: dict[str, Any], names: Mapping[str, str]) -> None:
    """Rename the chunks and packs of a tree manifest (see :func:`copy_chunks`)."""
    for e in manifest["entries"]:
        if e["type"] == "file" and "chunks" in e:
            e["chunks"] = [names[d] for d in e["chunks"]]
        elif e["type"] == "file":
            e["pack"] = names[e["pack"]]


# -- the hooks: each takes the call's HookArgs ---------------------------------------
def _protect(args: HookArgs) -> Any:
    if args.hook != args.parameters.get("snapshot_hook", "prepare_finish"):
        return None  # the other of the two hooks does it
    return protect_tree(require_checkpoint(args.checkpoint, args.resource), args.resource,
                        args.parameters, args.kwargs.get("operation_log"))


def _restore(args: HookArgs) -> dict[str, Any]:
    dest = restore_tree(require_checkpoint(args.checkpoint, args.resource), args.resource,
                        args.parameters)
    args.publish(dest)
    return {"path": dest}


def _verify(args: HookArgs) -> dict[str, Any]:
    return verify_resource(require_checkpoint(args.checkpoint, args.resource), args.resource,
                           args.parameters)


def _copy(args: HookArgs) -> dict[str, Any]:
    checkpoint = require_checkpoint(args.checkpoint, args.resource)
    manifest = read_manifest(checkpoint.get_resource_bank_section(args.resource), args.resource)
    return copy_chunks(checkpoint, args.resource, manifest_chunks(manifest), args.kwargs,
                       rename=rename_chunks)


def _delete(args: HookArgs) -> dict[str, Any]:
    return delete_resource(require_checkpoint(args.checkpoint, args.resource), args.resource)


class FsProtectOperation(HookOperation):
    """Protect in ``prepare_finish`` or ``main``, as ``snapshot_hook`` says."""

    def __init__(self) -> None:
        super().__init__({"prepare_finish": _protect, "main": _protect})


class FsProtectionPlugin(MainHooksPlugin):
    """Local directory trees, chunked and deduplicated in the bank."""

    supported_resource_types: ClassVar[tuple[str, ...]] = (DIRECTORY,)
    options_schema = OPTIONS_SCHEMA
    restore_schema = RESTORE_SCHEMA
    verify_schema = VERIFY_SCHEMA
    saved_info_schema = SAVED_INFO_SCHEMA

    main_hooks = {"restore": _restore, "verify": _verify, "copy": _copy, "delete": _delete}

    def get_protect_operation(self, resource: Resource) -> Operation:
        return FsProtectOperation()

    def preflight(self, operation: str, resource: Resource, parameters: Mapping[str, Any], *,
                  checkpoint: HookCheckpoint | None = None) -> list[str]:
        """A protect needs the folder; a restore, a destination that is empty
        (or ``force``, or already this tree)."""
        if operation == "protect":
            return source_problems(resource, "folder")
        if operation == "restore":
            return destination_problems(resource, parameters,
                                        lambda dest: _restored(checkpoint, resource, dest))
        return []

    @classmethod
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        manifest = get_json(metadata_store, MANIFEST)
        files = [e for e in manifest["entries"] if e["type"] == "file"]
        return {"root": manifest["root"], "files": len(files),
                "bytes": sum(e["size"] for e in files), "chunk_size": manifest["chunk_size"]}
