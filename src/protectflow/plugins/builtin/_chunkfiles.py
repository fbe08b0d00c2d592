"""Files in and out of the chunk store: chunk a file, pack small files,
reference a file's earlier chunks, and verify, release or copy many chunks.

Chunking is fixed-size per file: see :mod:`protectflow.plugins.builtin.fs` for why.
Small files are packed: :func:`store_pack` concatenates several into one
chunk (a *pack*), named by the keyed hash of the whole like any chunk, so refs,
dedup and delete-safety stay per chunk; the caller records each file's
``(offset, length, sha256)`` inside it, which :func:`verify_all` checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from protectflow.bank.chunks.refs import release_chunks
from protectflow.bank.chunks.store import ChunkStore, sha256
from protectflow.errors import ChunkError, DamagedFilesError
from protectflow.plugins.progress import advance

__all__ = ["copy_all", "release_all", "reuse_file", "store_file", "store_pack", "store_pieces",
           "verify_all"]
#: Damaged files a verify names in its message: every one a damaged chunk or
#: two can reach (a pack holds thousands of files); all are in ``damaged``.
_FILES_SHOWN = 10_000


def read_pieces(path: str, chunk_size: int) -> Iterable[memoryview]:
    """Yield the file at ``path`` in pieces of ``chunk_size`` bytes.

    Each piece is a view of one buffer, read into again for the next piece:
    valid until the next one is asked for. Fresh buffers would cost a page
    fault per 4 KiB each time, which on some virtual machines (memory just
    given back to the host) is most of a protect's time.
    """
    buffer = bytearray(chunk_size)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = _fill(f, buffer)
            if not n:
                return
            yield memoryview(buffer)[:n]
            if n < chunk_size:
                return


def _fill(f: Any, buffer: bytearray) -> int:
    """Read into ``buffer`` until it is full or the file ends; bytes read."""
    view, n = memoryview(buffer), 0
    while n < len(view):
        got = f.readinto(view[n:])
        if not got:
            break
        n += got
    return n


def read_piece(path: str, index: int, chunk_size: int) -> bytes:
    """Piece ``index`` of the file at ``path`` (not through a symlink)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return os.pread(fd, chunk_size, index * chunk_size)
    finally:
        os.close(fd)


def store_file(store: ChunkStore, path: str,
               chunk_size: int) -> tuple[list[str], int, int, int]:
    """Chunk the file at ``path`` into ``store``.

    Returns
    -------
    tuple
        ``(chunk digests, chunks newly stored, bytes newly stored, bytes read)``.
    """
    return store_pieces(store, read_pieces(path, chunk_size))


def store_pieces(store: ChunkStore,
                 pieces: Iterable[memoryview]) -> tuple[list[str], int, int, int]:
    """Store each of ``pieces`` as a chunk of ``store``.

    Returns
    -------
    tuple
        ``(chunk digests, chunks newly stored, bytes newly stored, bytes read)``.
    """
    digests: list[str] = []
    new = new_bytes = size = 0
    for piece in pieces:
        digest = store.chunk_id(piece)
        digests.append(digest)
        size += len(piece)
        advance(len(piece))
        if store.add(digest, piece):
            new += 1
            new_bytes += len(piece)
    return digests, new, new_bytes, size


def store_pack(store: ChunkStore, pack: bytearray) -> tuple[str, int]:
    """Store the concatenated small files ``pack`` as one chunk; the caller
    records each file's ``(offset, length, sha256)`` in it.

    Returns
    -------
    tuple
        ``(pack digest, bytes newly stored)``.
    """
    digest = store.chunk_id(pack)
    return digest, len(pack) if store.add(digest, pack) else 0


def reuse_file(store: ChunkStore, path: str, digests: list[str],
               chunk_size: int) -> tuple[int, int]:
    """Reference a file's chunks from an earlier manifest without reading it,
    reading back only the chunks the bank lost; returns ``(new, new bytes)``.

    Raises
    ------
    ChunkError
        If a lost chunk's bytes in the file no longer match (the file changed
        with its size and times kept): the caller chunks it afresh.
    """
    new = new_bytes = 0
    for index, digest in enumerate(digests):
        def load(i: int = index) -> bytes:
            return read_piece(path, i, chunk_size)
        if store.add(digest, load=load):
            new += 1
            new_bytes += chunk_size
    return new, new_bytes


def verify_all(store: ChunkStore, digests: Iterable[str], *, workers: int = 4,
               slices: Mapping[str, Sequence[tuple[int, int, str, str]]] | None = None,
               files: Iterable[tuple[str, int, Sequence[str]]] = (),
               damaged: Callable[[Mapping[str, str], Mapping[str, int]], list[str]] | None = None,
               ) -> tuple[int, int]:
    """Read back every chunk in ``digests`` and check its hash.

    ``slices`` maps a pack's digest to the ``(offset, length, sha256, name)``
    of the files in it: each file's bytes are checked too. ``files`` gives
    ``(name, size, chunk digests)`` of chunked files: their chunks' lengths
    must add up to the size the manifest records. A chunk that fails its
    check is marked bad (see :meth:`ChunkStore.mark_bad`). ``damaged``,
    given ``{bad chunk: why}`` and ``{good chunk: length}``, names the files
    they damage (and the byte ranges), for the message.

    Returns
    -------
    tuple
        ``(chunks checked, bytes read)``.

    Raises
    ------
    ChunkError
        Naming every missing or corrupt chunk and every size that does not
        add up (the first ten); a :class:`DamagedFilesError` naming the
        files damaged too, when ``damaged`` finds any.
    """
    unique = sorted(set(digests))
    errors: list[str] = []
    lengths: dict[str, int] = {}
    bad: dict[str, str] = {}

    def check(digest: str) -> int:
        try:
            data = store.read(digest, rehash=True)
        except ChunkError as err:
            errors.append(str(err))
            bad[digest] = str(err)
            return 0
        lengths[digest] = len(data)
        view = memoryview(data)
        for offset, length, digest_of, name in (slices or {}).get(digest, ()):
            piece = view[offset:offset + length]
            if len(piece) != length or sha256(piece) != digest_of:
                errors.append(f"{name}: its bytes in pack {digest} do not match its hash")
        return len(data)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(check, unique))
    for name, size, chunks in files:
        if all(d in lengths for d in chunks) and sum(lengths[d] for d in chunks) != size:
            errors.append(f"{name}: the manifest says {size} bytes, its chunks hold "
                          f"{sum(lengths[d] for d in chunks)}")
    files_lost = damaged(bad, lengths) if damaged is not None else []
    if errors or files_lost:
        errors.sort()
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        message = (f"{len(errors)} problems in {len(unique)} chunks:\n  "
                   + "\n  ".join(errors[:10]) + more)
        if not files_lost:
            raise ChunkError(message)
        shown = "\n  ".join(files_lost[:_FILES_SHOWN]) + (
            f"\n  ... and {len(files_lost) - _FILES_SHOWN} more"
            if len(files_lost) > _FILES_SHOWN else "")
        raise DamagedFilesError(f"{message}\n{len(files_lost)} damaged file(s) (file: byte "
                                f"ranges lost: why):\n  {shown}", tuple(files_lost))
    return len(unique), total


def release_all(store: ChunkStore, digests: Iterable[str], *, workers: int = 4) -> int:
    """Release every chunk in ``digests``, deleting those no ref and no live
    manifest names (:func:`~protectflow.bank.chunks.refs.release_chunks`);
    returns how many were deleted."""
    return release_chunks(store, digests, workers=workers)


def copy_all(source: ChunkStore, target: ChunkStore, digests: Iterable[str], *,
             workers: int = 4) -> tuple[int, dict[str, str]]:
    """Reference every chunk in ``target``, copying those its bank lacks.

    Each bank names chunks under its own key, so every chunk is read from
    the source (authenticated there) and named afresh in the target; the
    caller renames the chunks in what it copies (a manifest) with the map.

    Returns
    -------
    tuple
        ``(chunks copied, {source name: target name})``.

    Raises
    ------
    ChunkError
        If a source chunk is missing or corrupt.
    """
    def one(digest: str) -> tuple[str, str, bool]:
        data = source.read(digest)
        renamed = target.chunk_id(data)
        return digest, renamed, target.add(renamed, data)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(one, sorted(set(digests))))
    target.sync()  # before the manifest naming them is renamed
    return sum(stored for _, _, stored in done), {old: new for old, new, _ in done}
