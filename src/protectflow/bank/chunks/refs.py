"""Refs checked against the manifests that name chunks: what a delete keeps,
what a repair re-creates, what gc frees.

A ref (see :mod:`protectflow.bank.chunks.store`) says "this checkpoint's resource
uses that chunk"; the resource's *manifest* (any object in its bank section,
``checkpoints/ID/data/resources/KEY/...``) says which chunks it needs to be
restored. The two must agree, and when they do not, the manifest wins: it is
what a restore reads. So:

- a delete releases a chunk only when it has no ref left *and* no manifest
  of a live checkpoint names it (:func:`release_chunks`); a chunk still
  named gets its missing refs back instead of being deleted;
- :func:`repair_refs` re-creates the refs a checkpoint's manifests call for
  (``protectflow checkpoints repair``);
- :func:`free_checkpoint` releases every chunk a checkpoint holds a ref on
  or names, whatever plugin made it, for gc removing a protect or a delete
  that died.

The naming convention every chunk-storing plugin follows: a manifest names
its chunks in lists under a ``"chunks"`` key and in strings under a
``"pack"`` key, at any depth of its JSON. A checkpoint is *live* unless it
is being deleted (``deleting``, ``error_deleting``, ``deleted``): two
deletes of checkpoints sharing a chunk must not keep it for each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from protectflow._paths import unsegment
from protectflow.bank.chunks.store import REFS, ChunkStore, chunk_key, owner_id, ref_key
from protectflow.bank.objects.store import Bank
from protectflow.errors import BankError
from protectflow.states import DELETED, DELETING, ERROR_DELETING

__all__ = ["free_checkpoint", "live_names", "manifest_names", "named_chunks",
           "release_chunks", "renamed_manifest", "repair_refs"]

_CHECKPOINTS = "checkpoints/"
_DYING = frozenset({DELETING, ERROR_DELETING, DELETED})


def manifest_names(value: Any) -> Iterator[str]:
    """The chunk names a manifest's JSON holds (``chunks`` lists, ``pack``
    strings, at any depth); a manifest stored as JSON text is parsed."""
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except ValueError:
            return
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if key == "chunks" and isinstance(inner, list):
                    yield from (name for name in inner if isinstance(name, str))
                elif key == "pack" and isinstance(inner, str):
                    yield inner
                elif isinstance(inner, (dict, list)):
                    stack.append(inner)
        elif isinstance(item, list):
            stack.extend(inner for inner in item if isinstance(inner, (dict, list)))


def renamed_manifest(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` (a manifest's JSON) with each chunk name :func:`manifest_names`
    would find in it replaced as ``names`` says (a name it lacks stays): what a
    key rotation, which renames every chunk, does to every manifest. A new
    value; ``value`` is not changed."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if key == "chunks" and isinstance(inner, list):
                out[key] = [names.get(n, n) if isinstance(n, str) else n for n in inner]
            elif key == "pack" and isinstance(inner, str):
                out[key] = names.get(inner, inner)
            else:
                out[key] = renamed_manifest(inner, names)
        return out
    if isinstance(value, list):
        return [renamed_manifest(inner, names) for inner in value]
    return value


def _owner_of(checkpoint_id: str, key: str) -> str | None:
    """The ref owner of the resource whose section holds ``key``, or None
    for the checkpoint's own data."""
    parts = key.split("/")
    if len(parts) > 4 and parts[2:4] == ["data", "resources"]:
        return owner_id(checkpoint_id, unsegment(parts[4]))
    return None


def named_chunks(bank: Bank, checkpoint_id: str) -> Iterator[tuple[str, str | None, str]]:
    """``(object key, ref owner, chunk name)`` for every chunk the data of
    ``checkpoint_id`` names; an object that cannot be read names nothing
    (the checks report it)."""
    for key in bank.iter_objects(f"{_CHECKPOINTS}{checkpoint_id}/data/"):
        try:
            value = bank.get_object(key)
        except BankError:
            continue
        owner = _owner_of(checkpoint_id, key)
        for name in manifest_names(value):
            yield key, owner, name


def _live_ids(bank: Bank, exclude: str) -> Iterator[str]:
    for name, is_dir in bank.backend.listdir(_CHECKPOINTS.rstrip("/")):
        if not is_dir or name == exclude:
            continue
        try:
            record = bank.get_object(f"{_CHECKPOINTS}{name}/record")
        except BankError:
            if bank.has_object(f"{_CHECKPOINTS}{name}/record"):
                yield name  # damaged, not gone: its manifests still count
            continue
        if not (isinstance(record, dict) and record.get("status") in _DYING):
            yield name


def live_names(bank: Bank, candidates: Iterable[str], *,
               exclude: str) -> dict[str, set[str | None]]:
    """Which of ``candidates`` a live checkpoint other than ``exclude``
    names, and the ref owners naming each (None: the checkpoint's own data).

    Reads every live checkpoint's manifests: the price of not trusting refs
    alone, paid once per delete that would delete something.
    """
    wanted = set(candidates)
    found: dict[str, set[str | None]] = {}
    if not wanted:
        return found
    for checkpoint_id in _live_ids(bank, exclude):
        for _key, owner, name in named_chunks(bank, checkpoint_id):
            if name in wanted:
                found.setdefault(name, set()).add(owner)
    return found


def release_chunks(store: ChunkStore, digests: Iterable[str], *, workers: int = 4) -> int:
    """Drop ``store``'s refs on ``digests`` and delete each chunk that is
    left without a ref and that no live manifest names; a chunk a manifest
    still names gets that resource's ref back. Returns how many were deleted.
    """
    unique = sorted(set(digests))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        left = list(pool.map(store.drop_ref, unique))
        unreferenced = [d for d, others in zip(unique, left, strict=True) if not others]
        named = live_names(store.bank, unreferenced, exclude=store.checkpoint_id)
        for digest, owners in named.items():
            for owner in owners:
                if owner is not None:
                    store.bank.create_object(ref_key(digest, owner), b"")
        doomed = [d for d in unreferenced if d not in named]
        return sum(pool.map(store.delete_unreferenced, doomed))


def repair_refs(bank: Bank, checkpoint_id: str) -> tuple[list[str], list[str]]:
    """Re-create the refs the manifests of ``checkpoint_id`` call for.

    Returns
    -------
    tuple
        ``(refs re-created, problems)``: a named chunk that is missing from
        the bank cannot be repaired here (protect the data again, or restore
        the bank's ``chunks/`` from a copy).

    Raises
    ------
    BankError
        If the bank refuses a write.
    """
    made: list[str] = []
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for key, owner, name in named_chunks(bank, checkpoint_id):
        if owner is None or (owner, name) in seen:
            continue
        seen.add((owner, name))
        if bank.has_object(ref_key(name, owner)):
            if not bank.has_object(chunk_key(name)):
                problems.append(f"chunk {name} named by {key} is missing from bank {bank.url}")
            continue
        if ChunkStore(bank, owner).add_ref(name):
            made.append(ref_key(name, owner))
        else:
            problems.append(f"chunk {name} named by {key} is missing from bank {bank.url}")
    return sorted(made), sorted(problems)


def free_checkpoint(bank: Bank, checkpoint_id: str) -> int:
    """Release every chunk ``checkpoint_id`` holds a ref on or its manifests
    name, whatever made them, deleting the chunks nobody else uses: a
    protect that died before its manifests has only refs, a delete that died
    after dropping its refs has only manifests. Returns how many chunks were
    deleted."""
    mark = "/" + checkpoint_id + "@"
    by_owner: dict[str, set[str]] = {}
    for key in bank.iter_objects(REFS):
        if mark in key:
            _, _, digest, owner = key.split("/", 3)
            by_owner.setdefault(unsegment(owner), set()).add(digest)
    for _key, named_by, digest in named_chunks(bank, checkpoint_id):
        if named_by is not None:  # the checkpoint's own data holds no refs
            by_owner.setdefault(named_by, set()).add(digest)
    return sum(release_chunks(ChunkStore(bank, owner), digests)
               for owner, digests in sorted(by_owner.items()))
