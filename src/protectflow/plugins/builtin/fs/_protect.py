"""The fs plugin's protect: a tree into the chunk store, and its manifest
(see :mod:`protectflow.plugins.builtin.fs` for the format and the choices behind it).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import attrs

from protectflow.bank import BankSection, Checkpoint
from protectflow.dag.model import Resource
from protectflow.dag.outcomes import STATS_KEY, ResourceStats
from protectflow.errors import BankError, ChunkError, LocalPluginError
from protectflow.plugins.base import HookCheckpoint
from protectflow.plugins.builtin._chunkfiles import release_all, reuse_file, store_pack
from protectflow.plugins.builtin._chunks import ChunkStore, sha256
from protectflow.plugins.builtin._local import (
    MANIFEST,
    committed_manifest,
    get_json,
    resolve_path,
    rewritten_warnings,
    store_of,
)
from protectflow.plugins.builtin.fs import _tree
from protectflow.plugins.builtin.fs._entries import Entry, FileEntry, HardLinkEntry
from protectflow.plugins.builtin.fs._manifest import Manifest
from protectflow.plugins.builtin.fs._store import Stored, read_group, store_scanned
from protectflow.plugins.progress import advance

__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_PACK_SIZE", "latest_key", "preview_tree", "protect_tree",
           "read_manifest"]

#: Warnings logged one by one; the manifest keeps them all.
_LOGGED = 20
#: 4 MiB: each chunk costs inodes (itself, its refs/ folder), which bound a
#: first protect; an in-place edit of a large file re-stores one such chunk.
DEFAULT_CHUNK_SIZE = 4 << 20
DEFAULT_PACK_SIZE = 4 << 20
_LATEST = "plugins/fs/latest/"
#: Seconds between the syncs a protect makes while its workers still write.
_EARLY_SYNC = 0.25


def latest_key(resource: Resource) -> str:
    """The bank key naming the last checkpoint that committed ``resource``."""
    return _LATEST + sha256(resource.key.encode())[:32]


def read_manifest(section: BankSection, resource: Resource) -> Manifest:
    """The manifest a protect committed for ``resource``, checked whole.

    Raises
    ------
    LocalPluginError
        If the checkpoint holds none, or one of a version it cannot read, or
        one that is refused (see :meth:`Manifest.from_json`).
    """
    return Manifest.from_json(committed_manifest(section, resource), what=resource.key)


def _previous_files(bank: Any, resource: Resource,
                    chunk_size: int) -> tuple[dict[str, FileEntry], dict[str, FileEntry]]:
    """Path -> file entry of the last manifest committed for ``resource``:
    all of them (what the stats compare with), and those whose chunks a
    protect with ``chunk_size`` may reuse (none if it had another)."""
    try:
        latest = bank.get_object(latest_key(resource))
        old = Checkpoint(bank, latest["checkpoint"]).get_resource_bank_section(resource)
        manifest = Manifest.from_json(get_json(old, MANIFEST), what=resource.key)
    except (BankError, LocalPluginError, KeyError, TypeError):
        return {}, {}
    files = {e.path: e for e in manifest.file_entries()}
    return files, files if manifest.chunk_size == chunk_size else {}


def _stats(entries: Sequence[Entry], before: dict[str, FileEntry], results: list[Stored], *,
           added: int) -> ResourceStats:
    """The files of ``entries`` new, changed and unmodified since ``before``
    (the previous checkpoint's), the bytes read and added."""
    counts = {"new": [0, 0], "changed": [0, 0], "unmodified": [0, 0]}
    for e in entries:
        if not isinstance(e, FileEntry):  # a hard link's second name holds no data
            continue
        old = before.get(e.path)
        kind = "new" if old is None else "unmodified" if _unchanged(e, old) else "changed"
        counts[kind][0] += 1
        counts[kind][1] += e.size
    return ResourceStats(
        files_new=counts["new"][0], files_changed=counts["changed"][0],
        files_unmodified=counts["unmodified"][0], bytes_new=counts["new"][1],
        bytes_changed=counts["changed"][1], bytes_unmodified=counts["unmodified"][1],
        bytes_read=sum(r.read_bytes for r in results), bytes_added=added)


def _unchanged(entry: FileEntry, old: FileEntry | None) -> bool:
    return old is not None and (old.size, old.meta.mtime_ns, old.ctime_ns, old.ino,
                                old.meta.mode) == (entry.size, entry.meta.mtime_ns,
                                                   entry.ctime_ns, entry.ino, entry.meta.mode)


def protect_tree(checkpoint: HookCheckpoint, resource: Resource, parameters: dict[str, Any],
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
    # one sync before the manifest; --reread trusts no stored chunk it has not read back
    store = store_of(checkpoint, resource, durable=False,
                     check_existing=bool(parameters.get("reread")))
    chunk_size = int(parameters.get("chunk_size", DEFAULT_CHUNK_SIZE))
    pack_size = int(parameters.get("pack_size", DEFAULT_PACK_SIZE))
    started = time.time()
    before, previous = _previous_files(store.bank, resource, chunk_size)
    if parameters.get("reread"):
        previous = {}
    scanned, scan_warnings = _scan(root, parameters)
    files = [e for e in scanned if isinstance(e, FileEntry)]
    reused, repack = _reuse_packs(store, files, previous)
    large, to_pack = _split(files, previous, reused=reused, repack=repack,
                            small=min(pack_size // 4, chunk_size))
    # one job per large file and per pack, largest first, so that no big job
    # starts last and runs alone
    jobs: list[tuple[int, Callable[[], Stored]]] = [
        (e.size, functools.partial(_store_entry, store, root, e, previous.get(e.path),
                                   chunk_size)) for e in large]
    jobs += [(sum(e.size for e in group), functools.partial(_store_group, store, root, group))
             for group in _packs(to_pack, pack_size)]
    results = _run_jobs(store, jobs, int(parameters.get("workers", 4)))
    entries = _with_content(scanned, reused, results)
    _release_discarded(store, results, entries)
    warnings = (scan_warnings + [w for r in results for w in r.warnings]
                + rewritten_warnings(store))
    _log_warnings(log, warnings)
    manifest = Manifest(root=root, chunk_size=chunk_size, entries=tuple(entries),
                        pack_size=pack_size, checkpoint=checkpoint.id, resource=resource.key,
                        warnings=tuple(warnings))
    _commit(checkpoint, resource, store, manifest)
    stats = _stats(manifest.entries, before, results, added=store.added_bytes)
    return {"files": manifest.files, "entries": len(manifest), STATS_KEY: stats.to_json(),
            "bytes": manifest.bytes,
            "new_chunks": sum(r.new for r in results),
            "new_bytes": sum(r.new_bytes for r in results),
            "reused_files": len(reused) + sum(r.reused for r in results),
            "packs": len({e.pack.digest for e in manifest.file_entries() if e.pack}),
            "rewritten_chunks": len(store.rewritten),
            "warnings": warnings, "started_at": started, "finished_at": time.time()}


def preview_tree(bank: Any, resource: Resource, parameters: dict[str, Any]) -> ResourceStats:
    """What :func:`protect_tree` would do, from a scan alone: the files new,
    changed and unmodified since the last checkpoint of ``resource`` in
    ``bank`` (None: there is none) and, as ``bytes_read``, what it would read
    (``bytes_added`` is left 0: it is known only after the chunks are hashed).
    Nothing is read but metadata, nothing written.

    Raises
    ------
    LocalPluginError
        If the path is not a folder.
    """
    root = resolve_path(resource)
    if not os.path.isdir(root):
        raise LocalPluginError(f"{resource.key}: {root} is not a folder")
    chunk_size = int(parameters.get("chunk_size", DEFAULT_CHUNK_SIZE))
    before, _ = ({}, {}) if bank is None else _previous_files(bank, resource, chunk_size)
    scanned, _warnings = _scan(root, parameters)
    stats = _stats(scanned, before, [], added=0)
    read = stats.size if parameters.get("reread") else stats.bytes_new + stats.bytes_changed
    return attrs.evolve(stats, bytes_read=read)


def _with_content(scanned: list[Entry], reused: dict[str, FileEntry],
                  results: list[Stored]) -> list[Entry]:
    """The scanned entries, each file with the content it was stored with;
    the files gone since the scan (and their hard links) left out."""
    stored = dict(reused)
    stored.update((e.path, e) for r in results for e in r.entries)
    out: list[Entry] = []
    vanished: set[str] = set()
    for e in scanned:
        if isinstance(e, FileEntry):
            found = stored.get(e.path)
            if found is None:
                vanished.add(e.path)
            else:
                out.append(found)
        elif not isinstance(e, HardLinkEntry) or e.link not in vanished:
            out.append(e)
    return out


def _scan(root: str, parameters: dict[str, Any]) -> tuple[list[Entry], list[str]]:
    """The entries of the tree at ``root``, filtered, and what it left out."""
    skipped: list[str] = []
    entries = _tree.scan(root, parameters.get("include", ()), parameters.get("exclude", ()),
                         lambda rel, why: skipped.append(f"{rel}: {why}; not stored"))
    return entries, skipped


def _release_discarded(store: ChunkStore, results: list[Stored],
                       entries: list[Entry]) -> None:
    """Drop the refs of chunks only an earlier read of a changing file made."""
    discarded = {d for r in results for d in r.discarded}
    if discarded:
        kept = {d for e in entries if isinstance(e, FileEntry) for d in e.chunks or ()}
        release_all(store, discarded - kept)


def _log_warnings(log: Any, warnings: list[str]) -> None:
    if log is None or not warnings:
        return
    for message in warnings[:_LOGGED]:
        log.warning(message)
    if len(warnings) > _LOGGED:
        log.warning(f"... and {len(warnings) - _LOGGED} more (the manifest lists them all)")


def _split(files: list[FileEntry], previous: dict[str, FileEntry], *,
           reused: Mapping[str, FileEntry], repack: set[str],
           small: int) -> tuple[list[FileEntry], list[FileEntry]]:
    """The files to store one by one and those to pack (all but ``reused``)."""
    large: list[FileEntry] = []
    to_pack: list[FileEntry] = []
    for e in files:
        if e.path in reused:
            continue
        old = previous.get(e.path)
        if e.path not in repack and old is not None and old.chunks is not None \
                and _unchanged(e, old):
            large.append(e)  # reuse its chunks (they need no reading)
        elif e.size < small and not e.holes:  # sparse files keep their holes
            to_pack.append(e)
        else:
            large.append(e)
    return large, to_pack


def _run_jobs(store: ChunkStore, jobs: list[tuple[int, Callable[[], Stored]]],
              workers: int) -> list[Stored]:
    """Run ``(size, job)`` pairs largest first; what each stored."""
    jobs = sorted(jobs, key=lambda job: -job[0])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(job) for _, job in jobs]
        # meanwhile, flush what is written so far: the disk works while the
        # workers hash, and the final sync has little left to do
        while wait(futures, timeout=_EARLY_SYNC).not_done:
            store.sync()
        return [f.result() for f in futures]


def _commit(checkpoint: HookCheckpoint, resource: Resource, store: ChunkStore,
            manifest: Manifest) -> None:
    store.sync()  # every ref and chunk durable before the manifest that names them
    checkpoint.get_resource_bank_section(resource).update_object(MANIFEST, manifest.to_json())
    store.bank.update_object(latest_key(resource), {"checkpoint": checkpoint.id})


def _reuse_packs(store: ChunkStore, files: list[FileEntry],
                 previous: dict[str, FileEntry]) -> tuple[dict[str, FileEntry], set[str]]:
    """Give unchanged packed files their previous pack slice, referencing each
    pack once; returns ``({path: entry reused}, paths whose pack the bank lost)``."""
    by_pack: dict[str, list[FileEntry]] = {}
    for e in files:
        old = previous.get(e.path)
        if old is not None and old.pack is not None and _unchanged(e, old):
            by_pack.setdefault(old.pack.digest, []).append(e)
    reused: dict[str, FileEntry] = {}
    lost: set[str] = set()
    for digest, group in by_pack.items():
        try:
            store.add(digest)  # no source to re-store it from: lost means repack
        except ChunkError:
            with contextlib.suppress(BankError):
                store.release(digest)  # drop the ref just made
            lost.update(e.path for e in group)
            continue
        for e in group:
            reused[e.path] = attrs.evolve(e, pack=previous[e.path].pack, holes=False)
        advance(sum(e.size for e in group), len(group))
    return reused, lost


def _packs(files: list[FileEntry], pack_size: int) -> list[list[FileEntry]]:
    """``files`` (sorted by path) in consecutive groups of about ``pack_size`` bytes."""
    groups: list[list[FileEntry]] = []
    group: list[FileEntry] = []
    total = 0
    for e in files:
        group.append(e)
        total += e.size
        if total >= pack_size:
            groups.append(group)
            group, total = [], 0
    if group:
        groups.append(group)
    return groups


def _store_group(store: ChunkStore, root: str, group: list[FileEntry]) -> Stored:
    """Pack the files of ``group``."""
    pack, reads, warnings = read_group(root, group)
    if not reads:
        return Stored(warnings=warnings)
    digest, new_bytes = store_pack(store, pack)
    return Stored(new=1 if new_bytes else 0, new_bytes=new_bytes, read_bytes=len(pack),
                  warnings=warnings,
                  entries=[read.packed(digest) for read in reads])


def _store_entry(store: ChunkStore, root: str, entry: FileEntry, old: FileEntry | None,
                 chunk_size: int) -> Stored:
    """Chunk one file into the store."""
    path = os.path.join(root, entry.path)
    if old is not None and old.chunks is not None and _unchanged(entry, old):
        with contextlib.suppress(ChunkError, OSError):
            new, new_bytes = reuse_file(store, path, list(old.chunks), chunk_size)
            advance(entry.size, 1)  # unchanged: done without reading
            return Stored(new=new, new_bytes=new_bytes, read_bytes=new_bytes, reused=1, entries=[
                attrs.evolve(entry, chunks=old.chunks, sparse=old.sparse, holes=False)])
    return store_scanned(store, root, entry, chunk_size)
