"""What is inside checkpoints, read-only: :func:`listing` (``ls``),
:func:`find` (across checkpoints, newest first), :func:`diff` (two
checkpoints, resource by resource and item by item) and :func:`stats` (the
bank or one checkpoint, restic's ``restore-size`` and ``raw-data`` modes).

Everything here reads the plugins' contents through
:func:`protectflow.plugins.contents.contents`, so a plugin that lists its
items gets all four; one that does not is shown by its saved info.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import attrs

from protectflow.bank import Bank, Checkpoint, CheckpointStore
from protectflow.bank.chunks.store import chunk_key
from protectflow.dag.model import Resource
from protectflow.errors import BankError, LocalPluginError, PluginError
from protectflow.plugins.contents import Item, contents, glob_match

__all__ = ["RAW_DATA", "RESTORE_SIZE", "STATS_MODES", "Change", "Diff", "Found", "Listing",
           "StatsReport", "diff", "find", "listing", "matches", "stats"]

#: ``stats`` modes, as restic names them.
RESTORE_SIZE = "restore-size"
RAW_DATA = "raw-data"
STATS_MODES = (RESTORE_SIZE, RAW_DATA)
#: What the bank's content-addressed chunks live under.
_CHUNKS = "chunks/"


@attrs.frozen
class Listing:
    """The items of one resource of a checkpoint."""

    resource: Resource
    items: tuple[Item, ...]


def _under(path: str, prefix: str | None) -> bool:
    if prefix is None or prefix in ("", "."):
        return True
    prefix = prefix.strip("/")
    return path == prefix or path.startswith(prefix + "/")


def listing(checkpoint: Checkpoint, resource: str | None = None,
            path: str | None = None) -> list[Listing]:
    """The items of ``resource`` (a ``TYPE#ID`` key; every resource when
    None) in ``checkpoint``, only those at or under ``path`` when given.

    Raises
    ------
    BankError
        When the checkpoint has no such resource (close keys suggested), or
        its plugin cannot read it.
    PluginError
        When its plugin is not installed.
    """
    keys = [resource] if resource is not None else sorted(checkpoint.resource_graph.resources)
    out = []
    for key in keys:
        found, items = contents(checkpoint, key)
        out.append(Listing(found, tuple(i for i in items if _under(i.path, path))))
    if resource is not None and path is not None and not out[0].items:
        raise BankError(f"{resource} in checkpoint {checkpoint.id} holds nothing at {path!r}")
    return out


def matches(pattern: str, path: str) -> bool:
    """Whether ``path`` matches the glob ``pattern``: a pattern without
    ``/`` matches the name (the last part of the path), one with ``/`` the
    whole path from the resource's root (as restic's ``find``)."""
    return glob_match(path, (pattern,))


@attrs.frozen
class Found:
    """An item :func:`find` found: where, and what."""

    checkpoint: str
    created_at: str | None
    plan: str
    resource: str
    item: Item


def find(store: CheckpointStore, patterns: Sequence[str], *,
         checkpoints: Iterable[str] = (), plan: str | None = None,
         skipped: list[str] | None = None) -> Iterator[Found]:
    """The items matching any of ``patterns`` (see :func:`matches`) in the
    checkpoints of ``store``: those named (ids or unique prefixes), else
    every one (of ``plan``), newest first. A resource or checkpoint that
    cannot be read is told to ``skipped``, not a reason to stop.

    Raises
    ------
    BankError
        When a named checkpoint is not there.
    """
    named = [store.resolve(c) for c in checkpoints]
    chosen = [store.get(c) for c in named] if named else store.list(plan=plan, limit=None)
    for checkpoint in chosen:
        try:
            keys = sorted(checkpoint.resource_graph.resources)
            record = checkpoint.record
        except BankError as err:
            _skip(skipped, f"checkpoint {checkpoint.id}: {err}")
            continue
        for key in keys:
            try:
                _, items = contents(checkpoint, key)
            except (BankError, PluginError, LocalPluginError) as err:
                _skip(skipped, f"{key} in checkpoint {checkpoint.id}: {err}")
                continue
            for item in items:
                if item.path != "." and any(matches(p, item.path) for p in patterns):
                    yield Found(checkpoint.id, record.created_at, record.plan_name, key, item)


def _skip(skipped: list[str] | None, why: str) -> None:
    if skipped is not None:
        skipped.append(why)


@attrs.frozen
class Change:
    """One difference between two checkpoints: ``+`` added, ``-`` removed,
    ``M`` changed; ``path`` None for a whole resource."""

    kind: str
    resource: str
    path: str | None
    old: Item | None
    new: Item | None

    @property
    def size_delta(self) -> int:
        """How many bytes more the second checkpoint holds for it."""
        return _size(self.new) - _size(self.old)


def _size(item: Item | None) -> int:
    return item.size or 0 if item is not None else 0


@attrs.frozen
class Diff:
    """What changed from one checkpoint to another."""

    first: str
    second: str
    changes: tuple[Change, ...]

    def count(self, kind: str, *, resources: bool = False) -> int:
        """The changes of ``kind`` (``+``, ``-``, ``M``) to items, or to
        whole resources."""
        return sum(c.kind == kind and (c.path is None) == resources for c in self.changes)

    def bytes(self, kind: str) -> int:
        """The bytes of the items added (``+``) or removed (``-``)."""
        item = "new" if kind == "+" else "old"
        return sum(_size(getattr(c, item)) for c in self.changes
                   if c.kind == kind and c.path is not None)


def diff(first: Checkpoint, second: Checkpoint) -> Diff:
    """The resources and items added, removed and changed from ``first`` to
    ``second`` (by path; an item changed when its type, contents, size,
    mode, mtime, rows or link target differ), sorted by resource and path.

    Raises
    ------
    BankError
        When a checkpoint's contents cannot be read.
    PluginError
        When a plugin is not installed.
    """
    old_keys = set(first.resource_graph.resources)
    new_keys = set(second.resource_graph.resources)
    changes: list[Change] = []
    for key in sorted(old_keys | new_keys):
        old = dict(_items(first, key)) if key in old_keys else {}
        new = dict(_items(second, key)) if key in new_keys else {}
        if key not in old_keys:
            changes.append(Change("+", key, None, None, None))
        elif key not in new_keys:
            changes.append(Change("-", key, None, None, None))
        for path in sorted(old.keys() | new.keys()):
            a, b = old.get(path), new.get(path)
            if a is None:
                changes.append(Change("+", key, path, None, b))
            elif b is None:
                changes.append(Change("-", key, path, a, None))
            elif b.changed_from(a) and not (a.type == b.type == "dir" and a.mode == b.mode):
                changes.append(Change("M", key, path, a, b))
    return Diff(first.id, second.id, tuple(changes))


def _items(checkpoint: Checkpoint, key: str) -> Iterator[tuple[str, Item]]:
    _, items = contents(checkpoint, key)
    for item in items:
        if not (item.path == "." and item.type == "dir"):  # the root: its entries say it
            yield item.path, item


@attrs.frozen
class StatsReport:
    """``stats``: how much a checkpoint (or the whole bank) holds.

    ``restore-size``: the files and bytes a restore writes, summed over the
    checkpoints (``files``, ``size``). ``raw-data``: the distinct chunks
    they reference and the bytes those take in the bank, after deduplication
    and compression (``chunks``, ``size``); for a whole bank every chunk in
    it. ``unknown`` counts resources whose plugin lists no files.
    """

    mode: str
    checkpoints: int
    files: int
    size: int
    chunks: int = 0
    unknown: int = 0

    def to_json(self) -> dict[str, object]:
        return attrs.asdict(self)


def stats(store: CheckpointStore, checkpoint: str | None = None, *,
          mode: str = RESTORE_SIZE) -> StatsReport:
    """The :class:`StatsReport` of one checkpoint (an id or a unique
    prefix), or of every checkpoint of the bank.

    Raises
    ------
    BankError
        When the checkpoint is not there, or ``mode`` is not a mode.
    """
    if mode not in STATS_MODES:
        raise BankError(f"no stats mode {mode!r}; modes: {', '.join(STATS_MODES)}")
    chosen = ([store.get(store.resolve(checkpoint))] if checkpoint is not None
              else store.list(limit=None))
    if mode == RAW_DATA:
        return _raw_data(store.bank, chosen, whole_bank=checkpoint is None)
    files = size = unknown = 0
    for cp in chosen:
        for key in sorted(cp.resource_graph.resources):
            try:
                _, items = contents(cp, key)
            except (BankError, PluginError, LocalPluginError):
                unknown += 1
                continue
            sized = [i for i in items if i.type in ("file", "database")]
            if not sized:
                unknown += 1
            files += len(sized)
            size += sum(i.size or 0 for i in sized)
    return StatsReport(RESTORE_SIZE, len(chosen), files, size, unknown=unknown)


def _raw_data(bank: Bank, chosen: list[Checkpoint], *, whole_bank: bool) -> StatsReport:
    """The distinct chunks of the checkpoints (every chunk, for the whole
    bank) and the bytes they take as stored."""
    if whole_bank:
        keys = list(bank.iter_objects(_CHUNKS))
    else:
        digests: set[str] = set()
        for cp in chosen:
            digests |= _referenced(bank, cp)
        keys = [chunk_key(d) for d in sorted(digests)]
    size = 0
    for key in keys:
        try:
            size += bank.object_size(key)
        except BankError:
            continue  # gone: `verify` reports missing chunks
    return StatsReport(RAW_DATA, len(chosen), 0, size, chunks=len(keys))


def _referenced(bank: Bank, checkpoint: Checkpoint) -> set[str]:
    """The chunks the checkpoint's resources hold refs on."""
    out: set[str] = set()
    for key in bank.iter_objects("refs/"):
        parts = key.split("/")  # refs/<h[:2]>/<chunk>/<checkpoint>@<resource>
        if len(parts) == 4 and parts[3].split("@", 1)[0] == checkpoint.id:
            out.add(parts[2])
    return out
