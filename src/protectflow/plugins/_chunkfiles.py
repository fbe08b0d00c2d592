"""Files in and out of the chunk store: chunk a file, pack small files,
reference a file's earlier chunks, and verify, release or copy many chunks.

Chunking is fixed-size per file: see :mod:`protectflow.plugins.fs` for why.
Small files are packed: :func:`store_pack` concatenates several into one
chunk (a *pack*), named by the hash of the whole like any chunk, so refs,
dedup and delete-safety stay per chunk; the caller records each file's
``(offset, length, sha256)`` inside it, which :func:`verify_all` checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from protectflow.errors import ChunkError
from protectflow.plugins._chunks import ChunkStore, sha256

__all__ = ["copy_all", "release_all", "reuse_file", "store_file", "store_pack", "verify_all"]


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
    """Piece ``index`` of the file at ``path``."""
    with open(path, "rb", buffering=0) as f:
        f.seek(index * chunk_size)
        return f.read(chunk_size)


def store_file(store: ChunkStore, path: str,
               chunk_size: int) -> tuple[list[str], int, int, int]:
    """Chunk the file at ``path`` into ``store``.

    Returns
    -------
    tuple
        ``(chunk digests, chunks newly stored, bytes newly stored, bytes read)``.
    """
    digests: list[str] = []
    new = new_bytes = size = 0
    for piece in read_pieces(path, chunk_size):
        digest = store.chunk_id(piece)
        digests.append(digest)
        size += len(piece)
        if store.add(digest, piece):
            new += 1
            new_bytes += len(piece)
    return digests, new, new_bytes, size


def store_pack(store: ChunkStore, paths: list[str], size_hint: int = 0,
               ) -> tuple[str | None, list[tuple[int, int, str] | None], int]:
    """Concatenate the files at ``paths`` into one pack chunk in ``store``;
    ``size_hint``: their bytes, as scanned.

    Returns
    -------
    tuple
        ``(pack digest, slices, bytes newly stored)``: the digest is None if
        every file vanished; ``slices[i]`` is ``(offset, length, sha256)`` of
        file ``i`` in the pack, or None if it vanished since the scan.
    """
    pack = bytearray(size_hint)  # filled in place: no buffer per file
    used = 0
    slices: list[tuple[int, int, str] | None] = []
    for path in paths:
        start = used
        try:
            with open(path, "rb", buffering=0) as f:
                while True:
                    if used == len(pack):  # more than the scan saw: room for it
                        pack.extend(bytes(max(1 << 16, len(pack) // 4)))
                    got = f.readinto(memoryview(pack)[used:])
                    if not got:
                        break
                    used += got
        except FileNotFoundError:
            slices.append(None)
            continue
        slices.append((start, used - start, sha256(memoryview(pack)[start:used])))
    if all(piece is None for piece in slices):
        return None, slices, 0
    del pack[used:]
    digest = store.chunk_id(pack)
    return digest, slices, len(pack) if store.add(digest, pack) else 0


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
               ) -> tuple[int, int]:
    """Read back every chunk in ``digests`` and check its hash.

    ``slices`` maps a pack's digest to the ``(offset, length, sha256, name)``
    of the files in it: each file's bytes are checked too.

    Returns
    -------
    tuple
        ``(chunks checked, bytes read)``.

    Raises
    ------
    ChunkError
        Naming every missing or corrupt chunk (the first ten).
    """
    unique = sorted(set(digests))
    errors: list[str] = []
    total = 0

    def check(digest: str) -> int:
        try:
            data = store.read(digest)
        except ChunkError as err:
            errors.append(str(err))
            return 0
        view = memoryview(data)
        for offset, length, digest_of, name in (slices or {}).get(digest, ()):
            piece = view[offset:offset + length]
            if len(piece) != length or sha256(piece) != digest_of:
                errors.append(f"{name}: its bytes in pack {digest} do not match its hash")
        return len(data)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(check, unique))
    if errors:
        errors.sort()
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise ChunkError(f"{len(errors)} of {len(unique)} chunks failed verification:\n  "
                         + "\n  ".join(errors[:10]) + more)
    return len(unique), total


def release_all(store: ChunkStore, digests: Iterable[str], *, workers: int = 4) -> int:
    """Release every chunk in ``digests``; returns how many were deleted."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(store.release, sorted(set(digests))))


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
