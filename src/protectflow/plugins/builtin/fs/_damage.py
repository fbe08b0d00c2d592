"""Damaged files: which files of a tree a missing or corrupt chunk (or a
manifest that does not agree with its chunks) takes away, and which of
their bytes.

A restore of a damaged checkpoint writes every intact file and names every
damaged one with its byte ranges (``restic restore`` does the same); a
verify names them too, not only the chunks. A byte range is of the file as
restored, ``[start, end)``: a chunk of a sparse file covers the file's bytes
its data extents map it to, a pack covers the whole of each file in it, and
a file whose chunks hold fewer (or more) bytes than the manifest says is
damaged from where they stop agreeing -- never padded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import attrs

from protectflow.errors import ChunkError
from protectflow.plugins.builtin.fs._entries import FileEntry, HardLinkEntry, stored_size
from protectflow.plugins.builtin.fs._manifest import Manifest

__all__ = ["Damage", "chunk_reason", "damage_of", "describe", "file_damage", "tree_damage"]

#: Damaged files named in one message, before "and N more": every one, in
#: any tree a damaged chunk or two can reach (a pack holds thousands of files).
SHOWN = 10_000
Ranges = tuple[tuple[int, int], ...]


@attrs.frozen
class Damage:
    """A file not restored: its ``path``, the byte ranges ``[start, end)``
    lost, and why."""

    path: str
    ranges: Ranges
    reason: str

    def __str__(self) -> str:
        spans = ", ".join(f"{a}-{b - 1}" for a, b in self.ranges) or "none"
        return f"{self.path}: bytes {spans}: {self.reason}"

    def to_json(self) -> dict[str, object]:
        """``{"path", "ranges", "reason"}`` for a hook's output."""
        return {"path": self.path, "ranges": [list(r) for r in self.ranges],
                "reason": self.reason}


def chunk_reason(digest: str, error: str) -> str:
    """What a chunk error means for a file, short: the chunk, missing or corrupt."""
    return f"chunk {digest[:16]}… {'missing' if 'missing' in error else 'corrupt'}"


def describe(damaged: Iterable[Damage], *, what: str) -> str:
    """One message naming every damaged file (the first :data:`SHOWN`)."""
    found = sorted(damaged, key=lambda d: d.path)
    more = f"\n  ... and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    return (f"{what}: {len(found)} damaged file(s) not restored (file: byte ranges lost: "
            "why):\n  " + "\n  ".join(map(str, found[:SHOWN])) + more)


def _file_ranges(entry: FileEntry, start: int, end: int) -> list[tuple[int, int]]:
    """The file's byte ranges that bytes ``[start, end)`` of its data stream fill."""
    out: list[tuple[int, int]] = []
    stream = 0
    for offset, length in entry.sparse or ((0, entry.size),):
        lo, hi = max(start, stream), min(end, stream + length)
        if lo < hi:
            out.append((offset + lo - stream, offset + hi - stream))
        stream += length
    return out


def _merged(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return tuple(out)


def damage_of(entry: FileEntry, *, chunk_size: int, bad: Mapping[str, str],
              length: Callable[[str], int]) -> Damage | None:
    """What ``bad`` chunks (digest -> why) take from ``entry``, or None if
    nothing; ``length`` gives an intact chunk's length (for where the next
    one starts and whether they add up to the manifest's size)."""
    if entry.pack is not None:
        reason = bad.get(entry.pack.digest)
        return None if reason is None else Damage(
            entry.path, ((0, entry.size),) if entry.size else (), reason)
    lost: list[tuple[int, int]] = []
    reasons: list[str] = []
    stream = 0
    for digest in entry.chunks or ():
        if digest in bad:
            lost += _file_ranges(entry, stream, stream + chunk_size)
            reasons.append(bad[digest])
            stream += chunk_size
        else:
            stream += length(digest)
    expected = stored_size(entry)
    if stream != expected and not reasons:
        start, end = min(stream, expected), max(stream, expected)
        lost += _file_ranges(entry, start, end) or [(start, end)]
        reasons.append(f"its chunks hold {stream} bytes, its manifest says {expected}")
    if not reasons:
        return None
    return Damage(entry.path, _merged(lost), "; ".join(sorted(set(reasons))))


def file_damage(entry: FileEntry, read_chunk: Callable[[str], bytes | memoryview], *,
                chunk_size: int) -> Damage:
    """Why ``entry`` could not be restored, found by reading each of its
    chunks again (its write failed: the damaged ones fail again)."""
    bad: dict[str, str] = {}
    lengths: dict[str, int] = {}
    digests = (entry.pack.digest,) if entry.pack is not None else entry.chunks or ()
    for digest in dict.fromkeys(digests):
        try:
            lengths[digest] = len(read_chunk(digest))
        except ChunkError as err:
            bad[digest] = chunk_reason(digest, str(err))
    found = damage_of(entry, chunk_size=chunk_size, bad=bad, length=lengths.__getitem__)
    return found or Damage(entry.path, ((0, entry.size),) if entry.size else (),
                           "its bytes do not match the manifest")


def tree_damage(manifest: Manifest, bad: Mapping[str, str],
                lengths: Mapping[str, int]) -> list[Damage]:
    """Every file of ``manifest`` the ``bad`` chunks (or chunks that do not
    add up to a file's size) damage, hard links to them included."""
    found: dict[str, Damage] = {}
    for e in manifest.file_entries():
        digests = e.chunk_names()
        if not any(d in bad for d in digests) and (
                e.pack is not None or not all(d in lengths for d in digests)):
            continue
        damage = damage_of(e, chunk_size=manifest.chunk_size, bad=bad,
                           length=lambda d: lengths.get(d, manifest.chunk_size))
        if damage is not None:
            found[e.path] = damage
    return list(found.values()) + linked_damage(manifest, found)


def linked_damage(manifest: Manifest, found: Mapping[str, Damage]) -> list[Damage]:
    """The second names of damaged files: damaged as they are."""
    return [Damage(e.path, found[e.link].ranges, f"a hard link to {e.link}, which is damaged")
            for e in manifest if isinstance(e, HardLinkEntry) and e.link in found]
