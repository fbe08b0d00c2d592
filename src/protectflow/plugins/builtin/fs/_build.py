"""Rebuilding a tree from a manifest, confined to a private staging folder.

A manifest comes from the bank: untrusted. :meth:`._manifest.Manifest.from_json`
refuses (never cleans) any path that is absolute, empty, holds NUL, ``.`` or
``..`` components, or goes through an entry that is not a folder of the same
manifest -- all before anything is written. :func:`build` then creates every
entry relative to directory descriptors, each name created exclusively and
without following symlinks (``O_CREAT | O_EXCL | O_NOFOLLOW``, ``mkdir``,
``symlink``, ``mknod`` with ``dir_fd``), inside a staging folder the caller
made private (0700) and exclusive (``tempfile.mkdtemp``).

Exact like ``tar -p --xattrs --acls -S``: modes, times (access and
modification, in nanoseconds), extended attributes (POSIX ACLs included),
owners (as root, or when asked; set-id bits only then), hard links, sparse
files (holes left as holes: data written at its offsets, then truncated to
size), FIFOs, and devices (as root; otherwise reported as skipped).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from protectflow.errors import ChunkError
from protectflow.plugins.builtin._chunks import sha256
from protectflow.plugins.builtin.fs._damage import Damage, chunk_reason, file_damage
from protectflow.plugins.builtin.fs._entries import (
    DirEntry,
    Entry,
    FileEntry,
    HardLinkEntry,
    Packed,
    SpecialEntry,
    SymlinkEntry,
    stored_size,
)
from protectflow.plugins.builtin.fs._meta import DirStack, apply_meta, split
from protectflow.plugins.progress import advance

__all__ = ["Outcome", "build"]
#: A chunk's bytes by digest: a view that may be valid only until the calling
#: thread's next call (:meth:`ChunkStore.reader` reuses its buffers).
ReadChunk = Callable[[str], bytes | memoryview]
#: A chunk's name from its bytes (the bank's keyed hash).
ChunkId = Callable[[bytes | bytearray | memoryview], str]
#: Flags creating a file: exclusive, never through a symlink.
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: The most bytes given to one ``pwrite(2)``: a 4 MiB write into a new file
#: cost several times the kernel time of the same bytes in 1 MiB writes here
#: (Linux 6, ext4: the page cache's allocation for a large write).
_WRITE_MAX = 1 << 20


class Outcome:
    """What a restore could not do exactly: entries skipped, attributes not
    set (shown in the hook's output and log), files damaged in the bank and
    so not written (the restore fails naming them)."""

    def __init__(self) -> None:
        self.skipped: list[str] = []
        self.warnings: list[str] = []
        self.damaged: list[Damage] = []


# -- building ------------------------------------------------------------------------
def checked_reader(read_chunk: ReadChunk, chunk_id: ChunkId) -> ReadChunk:
    """``read_chunk``, refusing a chunk whose bytes are not what its name
    says (sealed under the name by a holder of the key, or a bug).

    Not redundant with the read's authentication: the object's AEAD tag binds
    its bytes to the chunk's key only against someone without the bank's
    key; a key holder seals any bytes under any name, and a later protect
    that dedups onto that name would restore them. The keyed hash is a
    second pass over every byte: 0.15 s of CPU per 256 MB here (AES-GCM's
    decrypt of the same bytes: 0.04 s), the price of "a file whose chunks
    disagree with its manifest is an error".
    """
    def read(digest: str) -> bytes | memoryview:
        data = read_chunk(digest)
        if chunk_id(data) != digest:
            raise ChunkError(f"chunk {digest} is corrupt: its bytes do not match its name")
        return data
    return read



def build(root_fd: int, entries: Sequence[Entry], read_chunk: ReadChunk, *, owners: bool,
          chunk_size: int, chunk_id: ChunkId, workers: int = 4) -> Outcome:
    """Recreate the checked ``entries`` in the empty folder ``root_fd``.

    Folders first (0700 while they fill), then file contents (in parallel),
    then links, FIFOs and devices, hard links, and last the folders' own
    metadata, deepest first, so that writing their children neither fails (a
    read-only folder) nor changes their times. Each chunk read is checked
    against its name (``chunk_id``, the bank's keyed hash). A file whose
    chunks are missing, corrupt, not what their names say, or do not agree
    with its size is not written (nor its hard links): the outcome names it,
    with the byte ranges lost (:mod:`._damage`), and every other file is
    written.
    """
    outcome = Outcome()
    with DirStack(root_fd) as dirs:
        for e in entries:
            if isinstance(e, DirEntry) and e.path != ".":
                parent, name = split(e.path)
                os.mkdir(name, 0o700, dir_fd=dirs.fd_of(parent))
    _write_files(root_fd, entries, read_chunk, chunk_id, owners=owners, workers=workers,
                 chunk_size=chunk_size, outcome=outcome)
    damaged = {d.path: d for d in outcome.damaged}
    with DirStack(root_fd) as dirs:
        for e in entries:
            if isinstance(e, (SymlinkEntry, SpecialEntry)):
                _make_other(dirs, e, owners=owners, outcome=outcome)
        for e in entries:
            if not isinstance(e, HardLinkEntry):
                continue
            if e.link in outcome.skipped:  # a device this process may not make
                outcome.skipped.append(e.path)
            elif e.link in damaged:
                outcome.damaged.append(Damage(e.path, damaged[e.link].ranges,
                                              f"a hard link to {e.link}, which is damaged"))
            else:
                _hard_link(dirs, root_fd, e)
    for e in sorted((e for e in entries if isinstance(e, DirEntry)),
                    key=lambda e: -(e.path.count("/") + (e.path != "."))):
        fd = _open_dir(root_fd, e.path)
        try:
            # exact: the staging folder may have inherited a default ACL of its parent
            outcome.warnings += apply_meta(e, fd=fd, owners=owners, exact=True)
        finally:
            os.close(fd)
    return outcome


def _open_dir(root_fd: int, rel: str) -> int:
    with DirStack(root_fd) as dirs:
        return os.dup(dirs.fd_of(rel if rel != "." else ""))


def _make_other(dirs: DirStack, e: SymlinkEntry | SpecialEntry, *, owners: bool,
                outcome: Outcome) -> None:
    """A symlink, FIFO or device (not a hard link: those come after)."""
    parent, name = split(e.path)
    fd = dirs.fd_of(parent)
    if isinstance(e, SymlinkEntry):
        os.symlink(e.target, name, dir_fd=fd)
    elif e.kind == "fifo":
        os.mkfifo(name, 0o600, dir_fd=fd)
    elif os.geteuid() == 0 and e.rdev is not None:
        devtype = stat.S_IFCHR if e.kind == "chr" else stat.S_IFBLK
        os.mknod(name, 0o600 | devtype, os.makedev(*e.rdev), dir_fd=fd)
    else:
        outcome.skipped.append(e.path)
        return
    outcome.warnings += apply_meta(e, dir_fd=fd, name=name, owners=owners)


def _hard_link(dirs: DirStack, root_fd: int, e: HardLinkEntry) -> None:
    leader_parent, leader_name = split(e.link)
    source_fd = _open_dir(root_fd, leader_parent)
    try:
        parent, name = split(e.path)
        os.link(leader_name, name, src_dir_fd=source_fd, dst_dir_fd=dirs.fd_of(parent),
                follow_symlinks=False)
    finally:
        os.close(source_fd)


def _write_files(root_fd: int, entries: Sequence[Entry], read_chunk: ReadChunk,
                 chunk_id: ChunkId, *, owners: bool, workers: int, chunk_size: int,
                 outcome: Outcome) -> None:
    # a pack is checked file by file (each file's SHA-256), so that one bad
    # file's bytes take only that file; a file's own chunks by their names
    read_checked = checked_reader(read_chunk, chunk_id)
    files = [e for e in entries if isinstance(e, FileEntry)]
    packs: dict[str, list[tuple[FileEntry, Packed]]] = {}
    for e in files:
        if e.pack is not None:
            packs.setdefault(e.pack.digest, []).append((e, e.pack))

    def write_pack(digest: str, dirs: DirStack) -> None:  # one read for all its files
        try:
            view = memoryview(read_chunk(digest))
        except ChunkError as err:
            why = chunk_reason(digest, str(err))
            outcome.damaged += [Damage(e.path, ((0, e.size),) if e.size else (), why)
                                for e, _ in packs[digest]]
            return
        for e, packed in packs[digest]:
            piece = view[packed.offset:packed.offset + packed.length]
            if len(piece) != packed.length or sha256(piece) != packed.sha256:
                outcome.damaged.append(Damage(
                    e.path, ((0, e.size),) if e.size else (),
                    f"its bytes in pack {digest[:16]}… do not match its hash"))
                continue
            write(dirs, e, (piece,))

    def write(dirs: DirStack, e: FileEntry, pieces: Iterable[bytes | memoryview]) -> None:
        try:
            outcome.warnings += _write_file(dirs, e, pieces, owners=owners)
        except ChunkError:  # lost, or not what the manifest says: named, not written
            parent, name = split(e.path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dirs.fd_of(parent))
            reread = read_checked if e.pack is None else read_chunk
            outcome.damaged.append(file_damage(e, reread, chunk_size=chunk_size))

    def write_chunks(e: FileEntry) -> None:
        with DirStack(root_fd) as dirs:
            write(dirs, e, (read_checked(d) for d in e.chunks or ()))

    def write_packs() -> None:
        with DirStack(root_fd) as dirs:
            for digest in packs:
                write_pack(digest, dirs)

    # Packs (small files) in one thread, started first: their work is
    # system calls, several per file, and threads doing those at once mostly
    # hand the GIL to each other (a 100,000-file tree: 6.6-6.9 s on four
    # threads, 4.7 s on one). Large files share the other threads.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(write_packs)] if packs else []
        jobs += [pool.submit(write_chunks, e) for e in files if e.pack is None]
        for job in jobs:
            job.result()  # list.append and += of a list are atomic: the threads share outcome


def _write_file(dirs: DirStack, entry: FileEntry, pieces: Iterable[bytes | memoryview], *,
                owners: bool) -> list[str]:
    parent, name = split(entry.path)
    fd = os.open(name, CREATE_FLAGS, 0o600, dir_fd=dirs.fd_of(parent))
    try:
        written = _write_extents(fd, entry, _counted(pieces))
        advance(0, 1)
        if written != stored_size(entry):  # short: never padded; long: never cut
            raise ChunkError(f"{entry.path}: its chunks hold {written} bytes, its manifest "
                             f"says {stored_size(entry)}")
        os.ftruncate(fd, entry.size)  # the holes at the end of a sparse file
        return apply_meta(entry, fd=fd, owners=owners)
    finally:
        os.close(fd)


def _counted(pieces: Iterable[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """``pieces``, each told to the run's progress as it is written."""
    for piece in pieces:
        yield piece
        advance(len(piece))


def _write_extents(fd: int, entry: FileEntry, pieces: Iterable[bytes | memoryview]) -> int:
    """Write the data stream at the entry's data extents (the whole file if it
    has none), leaving the gaps as holes; returns how many bytes it held."""
    extents = entry.sparse or ((0, entry.size),)
    index, offset, left = 0, extents[0][0], extents[0][1]
    total = 0
    for piece in pieces:
        view = memoryview(piece)
        while view:
            if index >= len(extents):
                raise ChunkError(f"{entry.path}: its chunks hold more bytes than its "
                                 "data extents")
            n = min(left, len(view), _WRITE_MAX)
            written = os.pwrite(fd, view[:n], offset)
            view, offset, left = view[written:], offset + written, left - written
            total += written
            if left == 0 and index + 1 < len(extents):
                index += 1
                offset, left = extents[index]
            elif left == 0:
                index += 1
    return total
