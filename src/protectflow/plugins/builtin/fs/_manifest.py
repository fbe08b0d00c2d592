"""The fs manifest: what a protect stored of one tree, read back once.

A :class:`Manifest` holds the tree's entries (:mod:`._entries`: one frozen
class per kind) sorted by path, with the lookups a reader needs -- by path,
in order, the totals (files, bytes), the chunks named -- and the protect's
settings (``root``, ``chunk_size``, ``pack_size``) and warnings.

A manifest comes from the bank: untrusted. :meth:`Manifest.from_json`
checks the version once (1, 2 and 3 are read; a newer one is refused with
"upgrade"), every entry's fields, and refuses (never cleans) any path that
is absolute, empty, holds NUL, ``.`` or ``..`` components, is listed twice,
or goes through an entry that is not a folder listed before it -- so a
restore can trust every path it is given. :meth:`Manifest.to_json` gives
back the JSON it was read from, key for key (the bank stores it with sorted
keys: the bytes are those an older protectflow wrote).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping

import attrs

from protectflow._fields import Fields
from protectflow.errors import LocalPluginError
from protectflow.plugins.builtin.fs._entries import (
    DirEntry,
    Entry,
    FileEntry,
    HardLinkEntry,
    Json,
    Meta,
    entry_from_json,
    quick_entry,
)

__all__ = ["MANIFEST_VERSION", "MAX_CHUNK_SIZE", "READABLE_VERSIONS", "Manifest"]

#: The version a protect writes, and those a restore reads.
MANIFEST_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
#: The largest chunk a protect makes; a manifest naming more is refused.
MAX_CHUNK_SIZE = 64 << 20
#: Problems named when a manifest is refused.
_SHOWN = 10


#: The root's place in a manifest's index until its entry is read (a manifest
#: without one is refused): entries may be listed before it.
_ROOT = DirEntry(path=".", meta=Meta(0o700, 0))


class _Refused(Exception):
    """One entry's problem, while a manifest is read."""


@attrs.frozen(kw_only=True)
class Manifest:
    """One tree as a protect stored it: its entries, sorted by path."""

    root: str
    chunk_size: int
    entries: tuple[Entry, ...]
    version: int = MANIFEST_VERSION
    pack_size: int | None = None
    checkpoint: str | None = None
    resource: str | None = None
    warnings: tuple[str, ...] | None = None
    _by_path: dict[str, Entry] = attrs.field(init=False, eq=False, repr=False)

    @_by_path.default
    def _index(self) -> dict[str, Entry]:
        return {e.path: e for e in self.entries}

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, path: str) -> Entry | None:
        """The entry at ``path`` (``"."``: the root), or None."""
        return self._by_path.get(path)

    def file_entries(self) -> Iterator[FileEntry]:
        """The files holding content (not the second names of hard links), in order."""
        return (e for e in self.entries if isinstance(e, FileEntry))

    @property
    def files(self) -> int:
        """How many files hold content (hard links' second names not counted)."""
        return sum(1 for _ in self.file_entries())

    @property
    def bytes(self) -> int:
        """The files' sizes added up (holes included, each hard-linked inode once)."""
        return sum(e.size for e in self.file_entries())

    def chunk_names(self) -> list[str]:
        """Every chunk digest the manifest names, packs included, with repeats."""
        return [d for e in self.file_entries() for d in e.chunk_names()]

    def pack_slices(self) -> dict[str, list[tuple[int, int, str, str]]]:
        """Pack digest -> ``(offset, length, sha256, path)`` of each file in it."""
        slices: dict[str, list[tuple[int, int, str, str]]] = {}
        for e in self.file_entries():
            if e.pack is not None:
                slices.setdefault(e.pack.digest, []).append(
                    (e.pack.offset, e.pack.length, e.pack.sha256, e.path))
        return slices

    def renamed(self, names: Mapping[str, str]) -> Manifest:
        """This manifest with every chunk and pack renamed by ``names`` (a
        copy to another bank). Only chunk names change: extents are byte
        ranges, a link a path, a packed file's ``sha256`` its plain hash."""
        def rename(e: Entry) -> Entry:
            if not isinstance(e, FileEntry):
                return e
            if e.pack is not None:
                return attrs.evolve(e, pack=attrs.evolve(e.pack, digest=names[e.pack.digest]))
            return attrs.evolve(e, chunks=tuple(names[d] for d in e.chunks or ()))
        return attrs.evolve(self, entries=tuple(rename(e) for e in self.entries))

    def to_json(self) -> Json:
        """The manifest's JSON, as :meth:`from_json` reads it."""
        out: Json = {"version": self.version, "root": self.root, "chunk_size": self.chunk_size}
        for name in ("pack_size", "checkpoint", "resource"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        collecting = gc.isenabled()  # 100,000 new dicts, none in a cycle: see from_json
        gc.disable()
        try:
            out["entries"] = [e.to_json() for e in self.entries]
        finally:
            if collecting:
                gc.enable()
        if self.warnings is not None:
            out["warnings"] = list(self.warnings)
        return out

    @classmethod
    def from_json(cls, data: object, *, what: str) -> Manifest:
        """The manifest ``data`` holds, checked whole (see the module's docstring).

        Parameters
        ----------
        data : object
            The JSON read from the bank.
        what : str
            Whose manifest it is (the resource's key), for the messages.

        Raises
        ------
        LocalPluginError
            If its version is not one this protectflow reads (saying to
            upgrade), or it is refused: naming every problem (the first ten).
        """
        def fail(why: str) -> Exception:
            return LocalPluginError(f"{what}: the manifest is refused, nothing was written: "
                                    f"{why}")

        f = Fields(data, "manifest", fail)
        f.version_in(READABLE_VERSIONS, lambda found: LocalPluginError(
            f"{what}: its manifest has format version {found!r}; this protectflow reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))} -- upgrade it"))
        chunk_size = f.data.get("chunk_size")
        if not (isinstance(chunk_size, int) and not isinstance(chunk_size, bool)
                and 0 < chunk_size <= MAX_CHUNK_SIZE):
            raise LocalPluginError(f"{what}: the manifest's chunk_size {chunk_size!r} is not "
                                   "valid; nothing was written")
        raw = f.data.get("entries")
        if not isinstance(raw, list):
            raise fail("the manifest's entries are not a list of objects")
        # 100,000 entries make 300,000 small objects, none in a cycle: the
        # collector's passes over them while they are made cost as much CPU
        # as making them, and find nothing
        collecting = gc.isenabled()
        gc.disable()
        try:
            entries, by_path = _entries(raw, fail)
        finally:
            if collecting:
                gc.enable()
        manifest = cls(root=f.get("root", str), chunk_size=chunk_size, entries=(),
                       version=f.get("version", int), pack_size=f.optional("pack_size", int),
                       checkpoint=f.optional("checkpoint", str),
                       resource=f.optional("resource", str),
                       warnings=f.strings("warnings") if "warnings" in f else None)
        # the index made while reading, not made again by the default
        object.__setattr__(manifest, "entries", entries)
        object.__setattr__(manifest, "_by_path", by_path)
        return manifest


def _entries(raw: list[object], fail: Callable[[str], Exception]
             ) -> tuple[tuple[Entry, ...], dict[str, Entry]]:
    """Every entry of ``raw`` and the entries by path, or ``fail`` naming
    every problem (the first ten).

    An entry as a protect writes it (a folder or file, :func:`quick_entry`)
    whose path is plainly good -- relative, no empty, ``.`` or ``..``
    component, new, in a folder listed before it -- is taken in this loop
    (100,000 times for a tree); any other goes through
    :func:`entry_from_json` and :func:`_check_path`, which say what is wrong.
    """
    problems: list[str] = []
    by_path: dict[str, Entry] = {".": _ROOT}
    entries: list[Entry] = []
    append = entries.append
    root = False
    for item in raw:
        entry = quick_entry(item) if type(item) is dict else None
        if entry is not None:
            path = entry.path
            folder = path.rpartition("/")[0] or "."
            # "/a/b/" holds "//", "/./" or "/../" iff a component is empty, . or ..
            framed = f"/{path}/"
            if (path not in by_path and type(by_path.get(folder)) is DirEntry
                    and "\0" not in path and "//" not in framed and "/./" not in framed
                    and "/../" not in framed):
                by_path[path] = entry
                append(entry)
                continue
        try:
            entry = entry_from_json(item, _refuse)
            _check_path(entry, by_path)
        except _Refused as err:
            named = item.get("path") if isinstance(item, dict) else None
            problems.append(f"{named!r}: {err}")
            continue
        if entry.path == ".":
            root = True
        by_path[entry.path] = entry
        append(entry)
    if not root:
        problems.append("no root folder entry '.'")
    if problems:
        raise fail("; ".join(problems[:_SHOWN])
                   + (f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""))
    return tuple(entries), by_path


def _refuse(why: str) -> Exception:
    return _Refused(why)


def _check_path(entry: Entry, by_path: dict[str, Entry]) -> None:
    """Refuse a path that could leave the restore's folder.

    Raises
    ------
    _Refused
        Saying why.
    """
    path = entry.path
    if not path:
        raise _Refused("not a path")
    if path == ".":
        if not isinstance(entry, DirEntry):
            raise _Refused("the root is not a folder")
        return
    if "\0" in path or path.startswith("/"):
        raise _Refused("an absolute path or one holding NUL")
    parts = path.split("/")
    if ".." in parts:  # said for what it is, never left to mkdir's EEXIST
        raise _Refused("a '..' component: a stored path may not climb out of its folder")
    if "" in parts or "." in parts:
        raise _Refused("an empty or '.' component")
    if path in by_path:
        raise _Refused("a duplicate path")
    if not isinstance(by_path.get(path.rpartition("/")[0] or "."), DirEntry):
        raise _Refused("its folder is not a folder listed before it (a symlink on the way?)")
    if isinstance(entry, HardLinkEntry):
        first = by_path.get(entry.link)
        if first is None or first.kind != entry.kind:
            raise _Refused("a hard link to no earlier entry of its type")

