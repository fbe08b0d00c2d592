"""Protect a local directory tree into the bank's shared chunk store.

Resource type ``protectflow::fs::Directory``; ``extra_info.path`` is the
folder (relative paths resolve against ``extra_info.base_dir``, else the
current directory).

- **protect** stores each file as fixed-size chunks named by their keyed
  hash (:meth:`._chunks.ChunkStore.chunk_id`;
  ``chunks/<h[:2]>/<h>``, shared by every checkpoint of the bank, created
  if absent; small files are packed several to a chunk, see below) and a
  manifest -- paths, metadata, symlinks, empty folders, special files -- in the
  checkpoint's resource section. A file whose size, mtime, ctime and inode
  match the previous checkpoint of the same resource is not read again: its
  chunks (or pack slice) are referenced (and re-stored from the file only if
  the bank lost them). Chunks and refs are written without a per-object
  fsync; the bank is synced every quarter second while the workers run (so
  the disk writes as they hash) and once more before the manifest commits.
  The work runs in ``prepare_finish`` by default, so a parent application's
  freeze covers it, or in ``main`` (``snapshot_hook``).
  Files are opened without following symlinks and compared with the scan;
  a file that changes while read is read again (a few times), reads stop at
  the scanned size, and every such event is a warning in the manifest, the
  hook's log and output, and the resource's status (see :mod:`._fsread`).
- **restore** rebuilds the tree at ``<target>/<resource id>`` as exactly as
  ``tar -p --xattrs --acls -S`` (see :mod:`._fsbuild`), confined to it: the
  manifest is checked whole first, every entry is created relative to
  directory descriptors in a private staging folder beside the destination,
  renamed into place (removed if the restore fails). A non-empty destination
  is refused unless ``force``, which puts each of the checkpoint's entries
  over its path and leaves the user's other files; a destination whose
  contents (hashed, not just stat) already match is left alone, so a rerun
  after a crash succeeds (see :mod:`._fsrestore`).
- **verify** reads every chunk the manifest names and checks its hash, and
  the hash of each packed file's slice.
- **copy** (to another bank) gives the target checkpoint the chunks its
  manifest names, storing those the target bank lacks, and the manifest
  with every chunk and pack renamed under the target bank's key.
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
like any other (named by the keyed hash of its bytes, referenced, released and
deleted as one), and the manifest gives each such file its ``pack``,
``offset``, ``length`` and ``sha256``. Dedup: an unchanged file (stat
match) keeps its previous entry, pack reference included, so a second
protect of an unchanged tree writes no chunk; changed small files go
together into new packs (a one-byte change writes one small pack). The cost:
a pack lives while any checkpoint still names one of its files, and a copy
of the tree elsewhere dedups against packs only where the same files fall
into the same packs (the same sorted run of changed small files).
Manifest version 3 adds owners, extended attributes, atimes, hard links,
FIFOs, devices and data extents (:mod:`._tree`); versions 1 (no packs) and
2 are still read; a newer one is refused.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from protectflow.bank.chunks.refs import manifest_names
from protectflow.dag.model import Resource
from protectflow.dag.outcomes import ResourceStats
from protectflow.errors import BankError, DamagedFilesError, LocalPluginError
from protectflow.plugins.base import (
    HookArgs,
    HookCheckpoint,
    HookOperation,
    Operation,
)
from protectflow.plugins.builtin._chunkfiles import verify_all
from protectflow.plugins.builtin._local import (
    ALLOW_OTHER_OWNER,
    MANIFEST,
    MainHooksPlugin,
    copy_chunks,
    destination_problems,
    get_json,
    object_schema,
    release_chunks,
    require_checkpoint,
    resolve_path,
    source_problems,
    store_of,
)
from protectflow.plugins.builtin.fs._build import Outcome
from protectflow.plugins.builtin.fs._damage import chunk_reason, describe, tree_damage
from protectflow.plugins.builtin.fs._listing import items_of
from protectflow.plugins.builtin.fs._manifest import MAX_CHUNK_SIZE, Manifest
from protectflow.plugins.builtin.fs._protect import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PACK_SIZE,
    latest_key,
    preview_tree,
    protect_tree,
    read_manifest,
)
from protectflow.plugins.builtin.fs._restore import matches, restore_into
from protectflow.plugins.builtin.fs._select import (
    destination,
    refuse_overwrites,
    selected_entries,
)
from protectflow.plugins.contents import Item

__all__ = ["DIRECTORY", "FsProtectionPlugin", "Manifest"]

DIRECTORY = "protectflow::fs::Directory"
_WORKERS = {"type": "integer", "minimum": 1, "maximum": 64, "default": 4,
            "description": "threads reading, hashing and storing chunks"}
_PATTERNS = {"type": "array", "items": {"type": "string", "minLength": 1}, "default": []}
OPTIONS_SCHEMA = object_schema("fs protect parameters", {
    "include": {**_PATTERNS, "description": "keep only files matching one of these globs "
                "(a pattern without '/' matches the name at any depth)"},
    "exclude": {**_PATTERNS, "description": "leave out files and folders matching these"},
    "chunk_size": {"type": "integer", "minimum": 4096, "maximum": MAX_CHUNK_SIZE,
                   "default": DEFAULT_CHUNK_SIZE, "description": "bytes per chunk"},
    "pack_size": {"type": "integer", "minimum": 0, "maximum": 64 << 20,
                  "default": DEFAULT_PACK_SIZE,
                  "description": "bytes per pack of small files (files under a quarter "
                  "of it are packed together into one chunk); 0: no packing"},
    "snapshot_hook": {"enum": ["prepare_finish", "main"], "default": "prepare_finish",
                      "description": "read the tree in prepare_finish (inside a parent's "
                      "freeze) or in main (shorter freeze, no point-in-time copy)"},
    "workers": _WORKERS,
    "reread": {"type": "boolean", "default": False,
               "description": "read every file again instead of reusing, for those whose "
               "size and times did not change, the previous checkpoint's chunks: what "
               "someone with the bank's key planted there is not carried forward; every "
               "chunk it would dedup onto is read back and checked, and a damaged one is "
               "stored again"},
})
RESTORE_SCHEMA = object_schema("fs restore parameters", {
    "target": {"type": "string", "minLength": 1,
               "description": "folder to restore into: the tree goes to <target>/<id> "
               "(required unless in_place)"},
    "in_place": {"type": "boolean", "default": False,
                 "description": "restore to the folder the tree was protected from, "
                 "refusing (unless force) where it would overwrite something that differs"},
    "force": {"type": "boolean", "default": False,
              "description": "restore into a non-empty <target>/<id>: each entry of the "
              "checkpoint replaces what is at its path, other files stay"},
    "include": {**_PATTERNS, "description": "restore only the entries matching one of "
                "these globs (and what is under a matching folder)"},
    "exclude": {**_PATTERNS, "description": "leave out the entries matching these globs"},
    "owners": {"type": "boolean", "description": "restore owners (numeric uid and gid) and "
               "set-id bits; default: when running as root"},
    "allow_other_owner": ALLOW_OTHER_OWNER,
    "workers": _WORKERS,
})
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
        If the manifest is refused, or the destination is not empty and
        ``force`` is not set.
    DamagedFilesError
        If chunks are missing or corrupt, or do not agree with the manifest:
        every intact file was written, the damaged ones are named.
    """
    return restore_with_outcome(checkpoint, resource, parameters)[0]


def restore_with_outcome(checkpoint: HookCheckpoint, resource: Resource,
                         parameters: dict[str, Any]) -> tuple[str, Outcome]:
    """:func:`restore_tree`, and what the restore could not do exactly.

    Raises
    ------
    LocalPluginError
        If the manifest is refused, or the destination is not empty and
        ``force`` is not set.
    DamagedFilesError
        If chunks are missing or corrupt, or do not agree with the manifest:
        every intact file was written, the damaged ones are named.
    """
    # checked whole, before anything is written
    manifest = read_manifest(checkpoint.get_resource_bank_section(resource), resource)
    entries = selected_entries(manifest, parameters)
    dest = destination(resource, parameters)
    force = bool(parameters.get("force", False))
    if parameters.get("in_place"):
        refuse_overwrites(resource, dest, entries, force=force)
        force = True  # merged into the live tree: what differs was refused above
    owners = parameters.get("owners")
    outcome = restore_into(dest, entries, store_of(checkpoint, resource), force=force,
                           owners=os.geteuid() == 0 if owners is None else bool(owners),
                           chunk_size=manifest.chunk_size,
                           workers=int(parameters.get("workers", 4)),
                           allow_other_owner=bool(parameters.get("allow_other_owner", False)),
                           what=resource.key)
    if outcome is not None and outcome.damaged:
        raise DamagedFilesError(describe(outcome.damaged, what=resource.key),
                                tuple(map(str, sorted(outcome.damaged, key=lambda d: d.path))))
    return dest, outcome or Outcome()


def _restored(checkpoint: HookCheckpoint | None, resource: Resource, dest: str) -> bool:
    """Whether ``dest`` already holds the tree ``checkpoint`` keeps of
    ``resource``, contents compared by hash (a rerun of a restore is fine)."""
    if checkpoint is None:
        return False
    try:
        manifest = read_manifest(checkpoint.get_resource_bank_section(resource), resource)
    except (BankError, LocalPluginError):
        return False  # the restore itself will say what is wrong with the checkpoint
    parent, name = os.path.split(os.path.abspath(dest))
    try:
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return matches(parent_fd, name, manifest.entries, chunk_size=manifest.chunk_size,
                       owners=False, chunk_id=store_of(checkpoint, resource).chunk_id)
    finally:
        os.close(parent_fd)


def manifest_chunks(manifest: object) -> list[str]:
    """Every chunk digest a stored manifest names, packs included (with
    repeats): read as a :class:`Manifest`, or -- one that is refused, which a
    delete must still release -- as any manifest's JSON is
    (:func:`protectflow.bank.chunks.refs.manifest_names`)."""
    if isinstance(manifest, Manifest):
        return manifest.chunk_names()
    try:
        return Manifest.from_json(manifest, what="manifest").chunk_names()
    except LocalPluginError:
        return list(manifest_names(manifest))


def verify_resource(checkpoint: HookCheckpoint, resource: Resource,
                    parameters: dict[str, Any]) -> dict[str, Any]:
    """Re-read and hash every chunk of the resource's manifest, and every
    packed file's slice of its pack.

    Raises
    ------
    ChunkError
        If a chunk is missing or corrupt: a :class:`DamagedFilesError`
        naming the files it damages and their byte ranges.
    """
    manifest = read_manifest(checkpoint.get_resource_bank_section(resource), resource)

    def damaged(bad: Mapping[str, str], lengths: Mapping[str, int]) -> list[str]:
        reasons = {d: chunk_reason(d, why) for d, why in bad.items()}
        return [str(d) for d in sorted(tree_damage(manifest, reasons, lengths),
                                       key=lambda d: d.path)]

    chunks, nbytes = verify_all(store_of(checkpoint, resource), manifest.chunk_names(),
                                workers=int(parameters.get("workers", 4)),
                                slices=manifest.pack_slices(), damaged=damaged)
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


def rename_chunks(manifest: object, names: Mapping[str, str]) -> dict[str, object]:
    """The JSON of a tree manifest with its chunks and packs renamed (see
    :func:`copy_chunks` and :meth:`Manifest.renamed`).

    Raises
    ------
    LocalPluginError
        If the manifest is refused.
    """
    return Manifest.from_json(manifest, what="manifest").renamed(names).to_json()


# -- the hooks: each takes the call's HookArgs ---------------------------------------
def _protect_hook(args: HookArgs) -> Any:
    if args.hook != args.parameters.get("snapshot_hook", "prepare_finish"):
        return None  # the other of the two hooks does it
    return protect_tree(require_checkpoint(args.checkpoint, args.resource), args.resource,
                        args.parameters, args.kwargs.get("operation_log"))


def _restore_main(args: HookArgs) -> dict[str, Any]:
    dest, outcome = restore_with_outcome(require_checkpoint(args.checkpoint, args.resource),
                                         args.resource, args.parameters)
    args.publish(dest)
    log = args.kwargs.get("operation_log")
    if log is not None:
        if outcome.skipped:
            log.warning(f"skipped {len(outcome.skipped)} devices (making one needs root): "
                        + ", ".join(outcome.skipped[:10]))
        for message in outcome.warnings[:20]:
            log.warning(message)
    return {"path": dest, "skipped": outcome.skipped, "warnings": outcome.warnings}


def _verify_main(args: HookArgs) -> dict[str, Any]:
    return verify_resource(require_checkpoint(args.checkpoint, args.resource), args.resource,
                           args.parameters)


def _copy_main(args: HookArgs) -> dict[str, Any]:
    checkpoint = require_checkpoint(args.checkpoint, args.resource)
    manifest = read_manifest(checkpoint.get_resource_bank_section(args.resource), args.resource)
    return copy_chunks(checkpoint, args.resource, manifest.chunk_names(), args.kwargs,
                       rename=rename_chunks)


def _delete_main(args: HookArgs) -> dict[str, Any]:
    return delete_resource(require_checkpoint(args.checkpoint, args.resource), args.resource)


class FsProtectOperation(HookOperation):
    """Protect in ``prepare_finish`` or ``main``, as ``snapshot_hook`` says."""

    def __init__(self) -> None:
        super().__init__({"prepare_finish": _protect_hook, "main": _protect_hook})


class FsProtectionPlugin(MainHooksPlugin):
    """Local directory trees, chunked and deduplicated in the bank."""

    supported_resource_types: ClassVar[tuple[str, ...]] = (DIRECTORY,)
    options_schema = OPTIONS_SCHEMA
    restore_schema = RESTORE_SCHEMA
    verify_schema = VERIFY_SCHEMA
    saved_info_schema = SAVED_INFO_SCHEMA

    main_hooks = {"restore": _restore_main, "verify": _verify_main, "copy": _copy_main,
                  "delete": _delete_main}

    def get_protect_operation(self, resource: Resource) -> Operation:
        return FsProtectOperation()

    def preflight(self, operation: str, resource: Resource, parameters: Mapping[str, Any], *,
                  checkpoint: HookCheckpoint | None = None) -> list[str]:
        """A protect needs the folder; a restore, a destination that is empty
        (or ``force``, or already this tree)."""
        if operation == "protect":
            return source_problems(resource, "folder")
        if operation == "restore":
            return self._restore_problems(resource, parameters, checkpoint)
        return []

    @staticmethod
    def _restore_problems(resource: Resource, parameters: Mapping[str, Any],
                          checkpoint: HookCheckpoint | None) -> list[str]:
        """A restore in place: what it would overwrite (unless force); else
        the destination's problems, as every local plugin's."""
        if not parameters.get("in_place"):
            if not parameters.get("target"):
                return [f"{resource.key}: a restore needs a 'target' folder (--target DIR), or "
                        "'in_place' (--in-place) to restore where it was"]
            return destination_problems(resource, parameters,
                                        lambda dest: _restored(checkpoint, resource, dest))
        if checkpoint is None:
            return []
        try:
            manifest = read_manifest(checkpoint.get_resource_bank_section(resource), resource)
            refuse_overwrites(resource, resolve_path(resource),
                               selected_entries(manifest, parameters),
                               force=bool(parameters.get("force")))
        except LocalPluginError as err:
            return [str(err)]
        except BankError:
            return []  # the restore itself says what is wrong with the checkpoint
        return []

    @classmethod
    def preview_protect(cls, bank: Any, resource: Resource,
                        parameters: dict[str, Any]) -> ResourceStats:
        """What a protect would read (``protect --dry-run``): a scan, no read."""
        return preview_tree(bank, resource, parameters)

    @classmethod
    def get_contents(cls, metadata_store: Any, resource: Resource) -> list[Item]:
        """The tree's entries: path, type, size, mode, mtime (see :mod:`._listing`)."""
        return items_of(read_manifest(metadata_store, resource))

    @classmethod
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        manifest = Manifest.from_json(get_json(metadata_store, MANIFEST), what=resource.key)
        return {"root": manifest.root, "files": manifest.files, "bytes": manifest.bytes,
                "chunk_size": manifest.chunk_size}
