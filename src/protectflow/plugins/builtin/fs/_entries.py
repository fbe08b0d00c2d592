"""The entries of an fs manifest: one frozen class per kind of entry.

An entry is a :class:`DirEntry`, :class:`FileEntry`, :class:`SymlinkEntry`,
:class:`SpecialEntry` (a FIFO or a device) or :class:`HardLinkEntry` (the
second and later names of a hard-linked inode: no content of its own, the
``link`` to the first name); :data:`Entry` is their union and ``kind`` says
which (``dir``, ``file``, ``symlink``, ``fifo``, ``chr``, ``blk``; a hard
link's is its inode's). Every entry has a ``path`` (POSIX, relative to the
tree's root, ``"."`` for the root itself) and the :class:`Meta` a restore
gives back.

The JSON of an entry (manifest version 3) is flat, as it always was: ``path``,
``type`` (the kind), ``mode`` (permission and set-id bits), ``uid``/``gid``
(and ``user``/``group`` when the ids have names), ``mtime_ns``,
``atime_ns``, ``xattrs`` (name -> base64 value; POSIX ACLs are the
``system.posix_acl_*`` ones) if any. Files add ``size``, their content --
either ``chunks`` (digests of fixed-size pieces of their data; with
``sparse``, the ``[offset, length]`` data extents, the rest being holes) or,
for a small file packed with others, ``pack`` (the pack chunk's digest),
``offset``, ``length`` and ``sha256`` (of the file's bytes) -- and the
``ino``/``dev``/``ctime_ns`` the next protect compares to skip re-reading an
unchanged file. Symlinks add ``target`` (stored as a link, never followed),
devices ``rdev`` (``[major, minor]``). A hard link has ``link``, the first
name's path, and no content. Versions 1 and 2 lack owners, attributes,
atimes, links, special files and holes. :func:`entry_from_json` reads one
entry, its fields' types checked by hand (no schema: a tree has 100,000 of
them); ``to_json`` gives back exactly the JSON it was read from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

import attrs

from protectflow._fields import Fail, Fields

__all__ = ["DirEntry", "Entry", "FileEntry", "HardLinkEntry", "Meta", "Packed",
           "SpecialEntry", "SymlinkEntry", "entry_from_json", "quick_entry", "stored_size"]

Json = dict[str, object]
Extents = tuple[tuple[int, int], ...]
_DIGEST = re.compile(r"[0-9a-f]{16,128}")
_SPECIAL = frozenset(("fifo", "chr", "blk"))
_LINKABLE = frozenset(("file", "symlink", "fifo", "chr", "blk"))


@attrs.frozen
class Meta:
    """What a restore gives back of any entry: mode, times, owners, extended
    attributes (name -> base64 value, sorted by name)."""

    mode: int
    mtime_ns: int
    atime_ns: int | None = None
    uid: int | None = None
    gid: int | None = None
    user: str | None = None
    group: str | None = None
    xattrs: tuple[tuple[str, str], ...] = ()

    def add_json(self, out: Json) -> None:
        """Add these fields to the entry's JSON ``out``."""
        # field by field, no loop: this runs once per entry of a tree
        out["mode"], out["mtime_ns"] = self.mode, self.mtime_ns
        if self.atime_ns is not None:
            out["atime_ns"] = self.atime_ns
        if self.uid is not None:
            out["uid"] = self.uid
        if self.gid is not None:
            out["gid"] = self.gid
        if self.user is not None:
            out["user"] = self.user
        if self.group is not None:
            out["group"] = self.group
        if self.xattrs:
            out["xattrs"] = dict(self.xattrs)

    @classmethod
    def from_fields(cls, f: Fields) -> Meta:
        """The metadata of an entry's JSON.

        Raises
        ------
        Exception
            What ``f`` fails with, when a field is missing or of the wrong type.
        """
        mode = f.get("mode", int)
        if not 0 <= mode <= 0o7777:
            raise f.fail(f"mode {mode!r} is not a mode")
        xattrs = f.default("xattrs", dict, {})
        if not all(isinstance(v, str) for v in xattrs.values()):
            raise f.fail("'xattrs' is not an object of base64 strings")
        return cls(mode, f.get("mtime_ns", int), atime_ns=f.optional("atime_ns", int),
                   uid=f.optional("uid", int), gid=f.optional("gid", int),
                   user=f.optional("user", str), group=f.optional("group", str),
                   xattrs=tuple(sorted(xattrs.items())))


@attrs.frozen
class Packed:
    """A small file's bytes inside a pack chunk: ``pack[offset:offset + length]``,
    whose plain SHA-256 is ``sha256``."""

    digest: str
    offset: int
    length: int
    sha256: str


@attrs.frozen(kw_only=True)
class DirEntry:
    """A folder."""

    kind: ClassVar[str] = "dir"
    path: str
    meta: Meta

    def to_json(self) -> Json:
        """The entry's JSON, as :func:`entry_from_json` reads it."""
        out: Json = {"path": self.path, "type": "dir"}
        self.meta.add_json(out)
        return out


@attrs.frozen(kw_only=True)
class FileEntry:
    """A regular file: its size and its content, ``chunks`` (and ``sparse``
    extents) or a ``pack`` slice -- neither only between a protect's scan and
    its read. ``ino``, ``dev`` and ``ctime_ns`` let the next protect skip an
    unchanged file; ``holes`` is the scan's finding (fewer blocks than
    bytes), never stored."""

    kind: ClassVar[str] = "file"
    path: str
    meta: Meta
    size: int
    chunks: tuple[str, ...] | None = None
    sparse: Extents | None = None
    pack: Packed | None = None
    ino: int | None = None
    dev: int | None = None
    ctime_ns: int | None = None
    holes: bool = attrs.field(default=False, eq=False)

    def to_json(self) -> Json:
        """The entry's JSON, as :func:`entry_from_json` reads it.

        Its keys come in sorted order, as the bank stores them: a tree's
        100,000 entries are then already sorted when ``json.dumps`` sorts
        them (a tenth of its CPU saved).
        """
        m, pack = self.meta, self.pack
        out: Json = {}
        if m.atime_ns is not None:
            out["atime_ns"] = m.atime_ns
        if self.chunks is not None:
            out["chunks"] = list(self.chunks)
        if self.ctime_ns is not None:
            out["ctime_ns"] = self.ctime_ns
        if self.dev is not None:
            out["dev"] = self.dev
        if m.gid is not None:
            out["gid"] = m.gid
        if m.group is not None:
            out["group"] = m.group
        if self.ino is not None:
            out["ino"] = self.ino
        if pack is not None:
            out["length"] = pack.length
        out["mode"], out["mtime_ns"] = m.mode, m.mtime_ns
        if pack is not None:
            out["offset"], out["pack"] = pack.offset, pack.digest
        out["path"] = self.path
        if pack is not None:
            out["sha256"] = pack.sha256
        out["size"] = self.size
        if self.sparse is not None:
            out["sparse"] = [list(extent) for extent in self.sparse]
        out["type"] = "file"
        if m.uid is not None:
            out["uid"] = m.uid
        if m.user is not None:
            out["user"] = m.user
        if m.xattrs:
            out["xattrs"] = dict(m.xattrs)
        return out

    def chunk_names(self) -> tuple[str, ...]:
        """The chunks holding its bytes: its pack, or its own chunks."""
        return (self.pack.digest,) if self.pack is not None else self.chunks or ()


@attrs.frozen(kw_only=True)
class SymlinkEntry:
    """A symbolic link, stored as a link (never followed)."""

    kind: ClassVar[str] = "symlink"
    path: str
    meta: Meta
    target: str

    def to_json(self) -> Json:
        """The entry's JSON, as :func:`entry_from_json` reads it."""
        out: Json = {"path": self.path, "type": "symlink"}
        self.meta.add_json(out)
        out["target"] = self.target
        return out


@attrs.frozen(kw_only=True)
class SpecialEntry:
    """A FIFO (``kind`` ``fifo``) or a device (``chr``, ``blk``, with its ``rdev``)."""

    path: str
    meta: Meta
    kind: str
    rdev: tuple[int, int] | None = None

    def to_json(self) -> Json:
        """The entry's JSON, as :func:`entry_from_json` reads it."""
        out: Json = {"path": self.path, "type": self.kind}
        self.meta.add_json(out)
        if self.rdev is not None:
            out["rdev"] = list(self.rdev)
        return out


@attrs.frozen(kw_only=True)
class HardLinkEntry:
    """A second (or later) name of the inode ``link`` names: no content."""

    path: str
    meta: Meta
    kind: str
    link: str
    ino: int | None = None
    dev: int | None = None
    ctime_ns: int | None = None

    def to_json(self) -> Json:
        """The entry's JSON, as :func:`entry_from_json` reads it."""
        out: Json = {"path": self.path, "type": self.kind}
        self.meta.add_json(out)
        for name, value in (("ino", self.ino), ("dev", self.dev), ("ctime_ns", self.ctime_ns)):
            if value is not None:
                out[name] = value
        out["link"] = self.link
        return out


Entry = DirEntry | FileEntry | SymlinkEntry | SpecialEntry | HardLinkEntry


def stored_size(entry: FileEntry) -> int:
    """The bytes a file's chunks hold: its size, or for a sparse file only its
    data extents (the holes are not stored)."""
    if entry.sparse is None:
        return entry.size
    return sum(length for _offset, length in entry.sparse)


# -- reading one entry's JSON ---------------------------------------------------------
def entry_from_json(data: object, fail: Fail) -> Entry:
    """The entry ``data`` holds, every field's type checked.

    A tree has 100,000 entries: a folder's or file's that is as a protect
    writes it is read by one hand check of each field's type
    (:func:`quick_entry`); any other goes through :class:`Fields`, which
    names what is wrong.

    Raises
    ------
    Exception
        What ``fail`` makes of the first problem found.
    """
    if type(data) is dict:
        quick = quick_entry(data)
        if quick is not None:
            return quick
    return _checked(data, fail)


_new = object.__new__


def _setters(cls: type, *names: str) -> tuple[Callable[[object, object], None], ...]:
    """The slots' own setters of the frozen ``cls``, ``names`` being all its
    fields in order (checked at import: a field added to the class and not
    here would be left unset): what its ``__init__`` does, without the
    per-field call through ``object.__setattr__``."""
    fields = tuple(a.name for a in attrs.fields(cls))
    if names != fields:
        raise TypeError(f"{cls.__name__}: the quick reader sets {names}, not its fields {fields}")
    return tuple(cls.__dict__[name].__set__ for name in names)


def quick_entry(d: dict[str, object]) -> Entry | None:
    """A folder or file entry as a protect writes it, every field checked,
    or None (then :func:`_checked` reads it, or says what is wrong).

    This runs once per entry of a tree (100,000 of them): one function, the
    fields read once into locals, the objects filled slot by slot -- the
    same fields and values their ``__init__`` sets (attrs classes without
    validators or converters), at a third less CPU.
    """
    get = d.get
    kind, path = get("type"), get("path")
    if type(path) is not str or "link" in d or (kind != "file" and kind != "dir"):
        return None
    mode, mtime, atime = get("mode"), get("mtime_ns"), get("atime_ns")
    uid, gid, user, group = get("uid"), get("gid"), get("user"), get("group")
    if not (type(mode) is int and 0 <= mode <= 0o7777 and type(mtime) is int
            and (atime is None or type(atime) is int) and (uid is None or type(uid) is int)
            and (gid is None or type(gid) is int) and (user is None or type(user) is str)
            and (group is None or type(group) is str)):
        return None
    xattrs = get("xattrs")
    if xattrs is None:
        pairs: tuple[tuple[str, str], ...] = ()
    elif type(xattrs) is dict and all(type(v) is str for v in xattrs.values()):
        pairs = tuple(sorted(xattrs.items()))
    else:
        return None
    meta = _new(Meta)
    m_mode, m_mtime, m_atime, m_uid, m_gid, m_user, m_group, m_xattrs = _META_SET
    m_mode(meta, mode)
    m_mtime(meta, mtime)
    m_atime(meta, atime)
    m_uid(meta, uid)
    m_gid(meta, gid)
    m_user(meta, user)
    m_group(meta, group)
    m_xattrs(meta, pairs)
    if kind == "dir":
        entry = _new(DirEntry)
        d_path, d_meta = _DIR_SET
        d_path(entry, path)
        d_meta(entry, meta)
        return entry
    size, ino, dev, ctime = get("size"), get("ino"), get("dev"), get("ctime_ns")
    if not (type(size) is int and size >= 0 and (ino is None or type(ino) is int)
            and (dev is None or type(dev) is int) and (ctime is None or type(ctime) is int)
            ) or "sparse" in d:
        return None
    digest = get("pack")
    if digest is not None:
        offset, length, sha = get("offset"), get("length"), get("sha256")
        if not (type(digest) is str and _DIGEST_MATCH(digest) and type(offset) is int
                and offset >= 0 and type(length) is int and length >= 0 and type(sha) is str):
            return None
        chunks = None
        pack: Packed | None = _new(Packed)
        p_digest, p_offset, p_length, p_sha = _PACKED_SET
        p_digest(pack, digest)
        p_offset(pack, offset)
        p_length(pack, length)
        p_sha(pack, sha)
    else:
        listed = get("chunks")
        if type(listed) is not list:
            return None
        for c in listed:
            if type(c) is not str or not _DIGEST_MATCH(c):
                return None
        chunks = tuple(listed)
        pack = None
    file = _new(FileEntry)
    f_path, f_meta, f_size, f_chunks, f_sparse, f_pack, f_ino, f_dev, f_ctime, f_holes = (
        _FILE_SET)
    f_path(file, path)
    f_meta(file, meta)
    f_size(file, size)
    f_chunks(file, chunks)
    f_sparse(file, None)
    f_pack(file, pack)
    f_ino(file, ino)
    f_dev(file, dev)
    f_ctime(file, ctime)
    f_holes(file, False)
    return file


_DIGEST_MATCH = _DIGEST.fullmatch
_META_SET = _setters(Meta, "mode", "mtime_ns", "atime_ns", "uid", "gid", "user", "group",
                     "xattrs")
_DIR_SET = _setters(DirEntry, "path", "meta")
_PACKED_SET = _setters(Packed, "digest", "offset", "length", "sha256")
_FILE_SET = _setters(FileEntry, "path", "meta", "size", "chunks", "sparse", "pack", "ino",
                     "dev", "ctime_ns", "holes")


def _checked(data: object, fail: Fail) -> Entry:
    """The entry ``data`` holds, read field by field through :class:`Fields`.

    Raises
    ------
    Exception
        What ``fail`` makes of the first problem found.
    """
    f = Fields(data, "manifest entry", fail)
    path, kind = f.get("path", str), f.data.get("type")
    meta = Meta.from_fields(f)
    if "link" in f:
        if kind not in _LINKABLE:
            raise fail(f"unknown type {kind!r}" if kind != "dir"
                       else "a hard link to no earlier entry of its type")
        return HardLinkEntry(path=path, meta=meta, kind=str(kind), link=f.get("link", str),
                             ino=f.optional("ino", int), dev=f.optional("dev", int),
                             ctime_ns=f.optional("ctime_ns", int))
    if kind == "dir":
        return DirEntry(path=path, meta=meta)
    if kind == "file":
        return _file(f, path, meta)
    if kind == "symlink":
        target = f.data.get("target")
        if not (isinstance(target, str) and target and "\0" not in target):
            raise fail("a symlink without a valid target")
        return SymlinkEntry(path=path, meta=meta, target=target)
    if kind in _SPECIAL:
        return SpecialEntry(path=path, meta=meta, kind=str(kind), rdev=_rdev(f, str(kind)))
    raise fail(f"unknown type {kind!r}")


def _rdev(f: Fields, kind: str) -> tuple[int, int] | None:
    rdev = f.data.get("rdev")
    if kind == "fifo" and rdev is None:
        return None
    if not (isinstance(rdev, list) and len(rdev) == 2 and all(_is_int(n) for n in rdev)):
        raise f.fail("a device without a valid number")
    return rdev[0], rdev[1]


def _file(f: Fields, path: str, meta: Meta) -> FileEntry:
    size = _as_int(f.data.get("size"))
    if size is None or size < 0:
        raise f.fail("no valid size")
    ino, dev, ctime_ns = f.optional("ino", int), f.optional("dev", int), f.optional("ctime_ns", int)
    if "pack" in f:
        return FileEntry(path=path, meta=meta, size=size, pack=_packed(f), ino=ino, dev=dev,
                         ctime_ns=ctime_ns)
    chunks = f.data.get("chunks")
    if not isinstance(chunks, list) or not all(_digest(d) for d in chunks):
        raise f.fail("no valid chunk list")
    sparse = f.data.get("sparse")
    extents = None if sparse is None else _extents(sparse, size)
    if sparse is not None and extents is None:
        raise f.fail("invalid data extents")
    return FileEntry(path=path, meta=meta, size=size, chunks=tuple(chunks), sparse=extents,
                     ino=ino, dev=dev, ctime_ns=ctime_ns)


def _packed(f: Fields) -> Packed:
    digest, sha = f.data.get("pack"), f.data.get("sha256")
    offset, length = _as_int(f.data.get("offset")), _as_int(f.data.get("length"))
    if not (isinstance(digest, str) and _digest(digest) and offset is not None
            and length is not None and offset >= 0 and length >= 0 and isinstance(sha, str)):
        raise f.fail("a packed file without a valid slice")
    return Packed(digest, offset, length, sha)


def _extents(value: object, size: int) -> Extents | None:
    """The data extents in ``value``, ordered and within ``size``; None if not."""
    if not isinstance(value, list):
        return None
    out: list[tuple[int, int]] = []
    end = 0
    for ext in value:
        if not (isinstance(ext, list) and len(ext) == 2 and all(_is_int(n) for n in ext)
                and ext[0] >= end and ext[1] > 0):
            return None
        out.append((ext[0], ext[1]))
        end = ext[0] + ext[1]
    return tuple(out) if end <= size else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _digest(value: object) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None
