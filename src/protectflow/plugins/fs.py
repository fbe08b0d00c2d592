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
import functools
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
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
    store_pack,
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
MANIFEST_VERSION = 2
_READABLE_VERSIONS = (1, 2)
#: 4 MiB: each chunk costs inodes (itself, its refs/ folder), which bound a
#: first protect; an in-place edit of a large file re-stores one such chunk.
DEFAULT_CHUNK_SIZE = 4 << 20
DEFAULT_PACK_SIZE = 4 << 20
_LATEST = "plugins/fs/latest/"
#: Seconds between the syncs a protect makes while its workers still write.
_EARLY_SYNC = 0.25

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


def _store(checkpoint: Any, resource: Resource, *, durable: bool = True) -> ChunkStore:
    return ChunkStore(bank_of(checkpoint, resource), owner_id(checkpoint.id, resource.key),
                      durable=durable)


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
    _check_version(manifest, resource)
    return manifest


def _check_version(manifest: dict[str, Any], resource: Resource) -> None:
    version = manifest.get("version")
    if version not in _READABLE_VERSIONS:
        raise LocalPluginError(
            f"{resource.key}: its manifest has format version {version!r}; this protectflow "
            f"reads versions {', '.join(map(str, _READABLE_VERSIONS))} -- upgrade it")


def _previous_files(bank: Any, resource: Resource, chunk_size: int) -> dict[str, Any]:
    """Path -> file entry of the last manifest committed for ``resource``."""
    try:
        latest = bank.get_object(_latest_key(resource))
        old = Checkpoint(bank, latest["checkpoint"]).get_resource_bank_section(resource)
        manifest = get_json(old, MANIFEST)
    except (BankError, KeyError, TypeError):
        return {}
    if (manifest.get("chunk_size") != chunk_size
            or manifest.get("version") not in _READABLE_VERSIONS):
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
    store = _store(checkpoint, resource, durable=False)  # one sync before the manifest
    chunk_size = int(parameters.get("chunk_size", DEFAULT_CHUNK_SIZE))
    started = time.time()
    previous = _previous_files(store.bank, resource, chunk_size)
    skipped: list[str] = []
    entries = _tree.scan(root, parameters.get("include", ()), parameters.get("exclude", ()),
                         skipped.append)
    if skipped and log is not None:
        log.warning(f"skipped {len(skipped)} special files, e.g. {skipped[0]}")

    files = [e for e in entries if e["type"] == "file"]
    pack_size = int(parameters.get("pack_size", DEFAULT_PACK_SIZE))
    small = min(pack_size // 4, chunk_size)
    reused, repack = _reuse_packs(store, files, previous)
    large: list[dict[str, Any]] = []
    to_pack: list[dict[str, Any]] = []
    for e in files:
        if e["path"] in reused:
            continue
        old = previous.get(e["path"])
        if e["path"] not in repack and old is not None and "chunks" in old \
                and _unchanged(e, old):
            large.append(e)  # reuse its chunks (they need no reading)
        elif e["size"] < small:
            to_pack.append(e)
        else:
            large.append(e)
    # one job per large file and per pack, largest first, so that no big job
    # starts last and runs alone
    jobs: list[tuple[int, Callable[[], tuple[int, int, int]]]] = [
        (e["size"], functools.partial(_store_entry, store, root, e, previous.get(e["path"]),
                                      chunk_size)) for e in large]
    jobs += [(sum(e["size"] for e in group), functools.partial(_store_group, store, root, group))
             for group in _packs(to_pack, pack_size)]
    jobs.sort(key=lambda job: -job[0])
    with ThreadPoolExecutor(max_workers=int(parameters.get("workers", 4))) as pool:
        futures = [pool.submit(job) for _, job in jobs]
        # meanwhile, flush what is written so far: the disk works while the
        # workers hash, and the final sync has little left to do
        while wait(futures, timeout=_EARLY_SYNC).not_done:
            store.sync()
        results = [f.result() for f in futures]
    vanished = {e["path"] for e in files if e.get("vanished")}
    entries = [e for e in entries if e["path"] not in vanished]
    manifest = {"version": MANIFEST_VERSION, "root": root, "chunk_size": chunk_size,
                "pack_size": pack_size, "checkpoint": checkpoint.id,
                "resource": resource.key, "entries": entries}
    store.sync()  # every ref and chunk durable before the manifest that names them
    section.update_object(MANIFEST, manifest)  # the commit
    store.bank.update_object(_latest_key(resource), {"checkpoint": checkpoint.id})
    return {"files": len(files) - len(vanished), "entries": len(entries),
            "bytes": sum(e["size"] for e in entries if e["type"] == "file"),
            "new_chunks": sum(r[0] for r in results), "new_bytes": sum(r[1] for r in results),
            "reused_files": len(reused) + sum(r[2] for r in results),
            "packs": len({e["pack"] for e in entries if "pack" in e}),
            "started_at": started, "finished_at": time.time()}


_PACKED = ("pack", "offset", "length", "sha256")


def _reuse_packs(store: ChunkStore, files: list[dict[str, Any]],
                 previous: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Give unchanged packed files their previous pack slice, referencing each
    pack once; returns ``(paths reused, paths whose pack the bank lost)``."""
    by_pack: dict[str, list[dict[str, Any]]] = {}
    for e in files:
        old = previous.get(e["path"])
        if old is not None and "pack" in old and _unchanged(e, old):
            by_pack.setdefault(old["pack"], []).append(e)
    reused: set[str] = set()
    lost: set[str] = set()
    for digest, group in by_pack.items():
        try:
            store.add(digest)  # no source to re-store it from: lost means repack
        except ChunkError:
            with contextlib.suppress(BankError):
                store.release(digest)  # drop the ref just made
            lost.update(e["path"] for e in group)
            continue
        for e in group:
            old = previous[e["path"]]
            e.update({k: old[k] for k in _PACKED})
            reused.add(e["path"])
    return reused, lost


def _packs(files: list[dict[str, Any]], pack_size: int) -> list[list[dict[str, Any]]]:
    """``files`` (sorted by path) in consecutive groups of about ``pack_size`` bytes."""
    groups: list[list[dict[str, Any]]] = []
    group: list[dict[str, Any]] = []
    total = 0
    for e in files:
        group.append(e)
        total += e["size"]
        if total >= pack_size:
            groups.append(group)
            group, total = [], 0
    if group:
        groups.append(group)
    return groups


def _store_group(store: ChunkStore, root: str,
                 group: list[dict[str, Any]]) -> tuple[int, int, int]:
    """Pack the files of ``group``; ``(new chunks, new bytes, files reused)``."""
    digest, slices, new_bytes = store_pack(
        store, [os.path.join(root, e["path"]) for e in group], sum(e["size"] for e in group))
    for e, piece in zip(group, slices, strict=True):
        if piece is None:
            e["vanished"] = True  # deleted since the scan: not in this checkpoint
            continue
        e.pop("chunks", None)
        e["pack"], (e["offset"], e["length"], e["sha256"]) = digest, piece
        e["size"] = piece[1]  # what was read, should the file have changed since the scan
    return (1 if new_bytes else 0), new_bytes, 0


def _store_entry(store: ChunkStore, root: str, entry: dict[str, Any],
                 old: dict[str, Any] | None, chunk_size: int) -> tuple[int, int, int]:
    """Chunk one file into the store; ``(new chunks, new bytes, files reused)``."""
    path = os.path.join(root, entry["path"])
    if old is not None and "chunks" in old and _unchanged(entry, old):
        with contextlib.suppress(ChunkError, OSError):
            new, new_bytes = reuse_file(store, path, old["chunks"], chunk_size)
            entry["chunks"] = old["chunks"]
            return new, new_bytes, 1
    try:
        digests, new, new_bytes, size = store_file(store, path, chunk_size)
    except FileNotFoundError:
        entry["vanished"] = True  # deleted since the scan: not in this checkpoint
        return 0, 0, 0
    entry["chunks"] = digests
    entry["size"] = size  # what was read, should the file have changed since the scan
    return new, new_bytes, 0


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


def verify_resource(checkpoint: Any, resource: Resource,
                    parameters: dict[str, Any]) -> dict[str, Any]:
    """Re-read and hash every chunk of the resource's manifest, and every
    packed file's slice of its pack.

    Raises
    ------
    ChunkError
        If a chunk is missing or corrupt.
    """
    manifest = read_manifest(section_of(checkpoint, resource), resource)
    chunks, nbytes = verify_all(_store(checkpoint, resource), manifest_chunks(manifest),
                                workers=int(parameters.get("workers", 4)),
                                slices=manifest_slices(manifest))
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
    copied = copy_all(_store(checkpoint, resource), _store(target, resource, durable=False),
                      digests)
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
    options_schema = OPTIONS_SCHEMA
    restore_schema = RESTORE_SCHEMA
    verify_schema = VERIFY_SCHEMA
    saved_info_schema = SAVED_INFO_SCHEMA

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
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        manifest = get_json(metadata_store, MANIFEST)
        files = [e for e in manifest["entries"] if e["type"] == "file"]
        return {"root": manifest["root"], "files": len(files),
                "bytes": sum(e["size"] for e in files), "chunk_size": manifest["chunk_size"]}
