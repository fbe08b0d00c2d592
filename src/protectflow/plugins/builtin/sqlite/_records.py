"""What the sqlite plugin stores in a resource's bank section, read back once.

- :class:`SnapshotInfo` (``snapshot``): written by ``prepare_finish`` when it
  copies the database, read by ``main`` when it stores that copy -- where
  it came from, when, and the file's mode, owner and mtime.
- :class:`SqliteManifest` (``manifest``, versions 1 and 2): the stored copy,
  as chunks of ``chunk_size`` bytes, with what :class:`SnapshotInfo` said
  (version 1 lacks the mode, owner and mtime).

Each has one ``from_json``, which checks the version and every field's type
(refusing with :class:`~protectflow.errors.LocalPluginError` naming the
resource), and one ``to_json`` giving back the JSON it was read from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import attrs

from protectflow._fields import Fields
from protectflow.errors import LocalPluginError

__all__ = ["MANIFEST_VERSION", "READABLE_VERSIONS", "SnapshotInfo", "SqliteManifest"]

MANIFEST_VERSION = 2
READABLE_VERSIONS = (1, 2)
_DIGEST = re.compile(r"[0-9a-f]{16,128}")
Json = dict[str, object]


def _fail(what: str, document: str) -> LocalPluginError:
    return LocalPluginError(f"{what}: its {document} in the bank is not valid")


@attrs.frozen(kw_only=True)
class FileMeta:
    """The database file's mode, owner and mtime, as the copy found them."""

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    mtime_ns: int | None = None

    def add_json(self, out: Json) -> None:
        """Add the fields known to ``out``."""
        for name in ("mode", "uid", "gid", "mtime_ns"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value

    @classmethod
    def from_fields(cls, f: Fields) -> FileMeta:
        """The fields of ``f`` that say them.

        Raises
        ------
        Exception
            What ``f`` fails with, when one is not an integer.
        """
        return cls(mode=f.optional("mode", int), uid=f.optional("uid", int),
                   gid=f.optional("gid", int), mtime_ns=f.optional("mtime_ns", int))


@attrs.frozen(kw_only=True)
class SnapshotInfo:
    """The copy ``prepare_finish`` took: of ``source``, at ``taken_at``."""

    source: str
    taken_at: float
    meta: FileMeta

    def to_json(self) -> Json:
        """The record's JSON, as :meth:`from_json` reads it."""
        out: Json = {"source": self.source, "taken_at": self.taken_at}
        self.meta.add_json(out)
        return out

    @classmethod
    def from_json(cls, data: object, *, what: str) -> SnapshotInfo:
        """The record ``data`` holds.

        Raises
        ------
        LocalPluginError
            If a field is missing or of the wrong type, naming it.
        """
        f = Fields(data, "snapshot record", lambda why: LocalPluginError(
            f"{_fail(what, 'snapshot record')}: {why}"))
        return cls(source=f.get("source", str), taken_at=f.get("taken_at", float),
                   meta=FileMeta.from_fields(f))


@attrs.frozen(kw_only=True)
class SqliteManifest:
    """The stored copy of a database: ``chunks`` of ``chunk_size`` bytes,
    ``size`` bytes in all; ``tables``, each table's row count (a copy made
    before protectflow counted them has none)."""

    source: str
    size: int
    chunk_size: int
    chunks: tuple[str, ...]
    taken_at: float
    meta: FileMeta
    version: int = MANIFEST_VERSION
    tables: tuple[tuple[str, int], ...] | None = None

    def to_json(self) -> Json:
        """The manifest's JSON, as :meth:`from_json` reads it."""
        out: Json = {"version": self.version, "source": self.source, "size": self.size,
                     "chunk_size": self.chunk_size, "chunks": list(self.chunks),
                     "taken_at": self.taken_at}
        self.meta.add_json(out)
        if self.tables is not None:
            out["tables"] = dict(self.tables)
        return out

    def renamed(self, names: Mapping[str, str]) -> SqliteManifest:
        """This manifest with its chunks renamed (a copy to another bank)."""
        return attrs.evolve(self, chunks=tuple(names[d] for d in self.chunks))

    @classmethod
    def from_json(cls, data: object, *, what: str) -> SqliteManifest:
        """The manifest ``data`` holds, its version checked first.

        Raises
        ------
        LocalPluginError
            If its version is not one this protectflow reads (saying to
            upgrade), or a field is missing or of the wrong type.
        """
        f = Fields(data, "manifest", lambda why: LocalPluginError(
            f"{_fail(what, 'manifest')}: {why}"))
        f.version_in(READABLE_VERSIONS, lambda found: LocalPluginError(
            f"{what}: its manifest has format version {found!r}; this protectflow reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))} -- upgrade it"))
        chunks = f.strings("chunks")
        if not all(_DIGEST.fullmatch(d) for d in chunks):
            raise f.fail("'chunks' is not a list of chunk names")
        size, chunk_size = f.get("size", int), f.get("chunk_size", int)
        if size < 0 or chunk_size <= 0:
            raise f.fail(f"size {size} or chunk_size {chunk_size} is not valid")
        return cls(source=f.get("source", str), size=size, chunk_size=chunk_size,
                   chunks=chunks, taken_at=f.get("taken_at", float),
                   meta=FileMeta.from_fields(f), version=f.get("version", int),
                   tables=_tables(f.optional("tables", dict), f.fail))


def _tables(found: dict[str, object] | None,
            fail: Callable[[str], Exception]) -> tuple[tuple[str, int], ...] | None:
    """The ``tables`` of a manifest: name -> row count, each a whole number."""
    if found is None:
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
               for n in found.values()):
        raise fail("'tables' is not an object of row counts")
    return tuple(sorted((str(k), int(v)) for k, v in found.items()))  # type: ignore[call-overload]
