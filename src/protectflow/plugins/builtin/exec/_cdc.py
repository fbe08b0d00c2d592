"""Content-defined chunking of a stream, at the speed of C, in constant memory.

A chunk ends where the stream's content says, not at a fixed offset, so a
second dump that differs by a few inserted rows shares every chunk but the
few around the change (fixed-size chunks would all shift after it).

The boundary test runs inside ``bytes.translate`` and ``bytes.find``, never a
Python loop per byte: each byte maps to one bit (a fixed pseudo-random half of
the 256 byte values gives 1), and a chunk ends after the first run of
:data:`_MARK_BITS` bits that spells :data:`_MARK` -- a test on the last 20
bytes alone, so boundaries follow the content wherever it moves. On data with
mixed bytes a position matches about once per 2**20 bytes; a chunk is at
least ``min_size`` and at most ``max_size`` bytes (long runs of one byte
never match and are cut at ``max_size``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import IO

__all__ = ["DEFAULT_MAX", "DEFAULT_MIN", "chunks"]

DEFAULT_MIN = 256 << 10
DEFAULT_MAX = 4 << 20
_READ = 1 << 20


def _table() -> bytes:
    """Byte -> ``b"1"`` or ``b"0"``: a fixed half of the byte values, chosen
    by a hash so no alphabet (digits, letters, zeros) falls on one side."""
    order = sorted(range(256), key=lambda b: hashlib.sha256(bytes([b])).digest())
    ones = set(order[:128])
    return bytes(ord("1") if b in ones else ord("0") for b in range(256))


_TABLE = _table()
#: The bit pattern that ends a chunk: 20 bits, so ~1 MiB apart on mixed data.
_MARK = b"10110011100011110100"
_MARK_BITS = len(_MARK)


def chunks(stream: IO[bytes], *, min_size: int = DEFAULT_MIN,
           max_size: int = DEFAULT_MAX) -> Iterator[bytes]:
    """Yield the content-defined chunks of ``stream`` until it ends.

    At most ``max_size + 1 MiB`` bytes are held at a time, whatever the
    stream's length.
    """
    buffer = bytearray()
    ended = False
    while True:
        while not ended and len(buffer) < max_size:
            piece = stream.read(_READ)
            if not piece:
                ended = True
            else:
                buffer += piece
        if not buffer:
            return
        cut = _boundary(buffer, min_size, max_size)
        if cut is None:
            cut = min(len(buffer), max_size) if not ended else len(buffer)
        with memoryview(buffer) as view:
            chunk = bytes(view[:cut])  # one copy: no slice of the buffer first
        yield chunk
        del buffer[:cut]


def _boundary(buffer: bytearray, min_size: int, max_size: int) -> int | None:
    """The end of the first chunk of ``buffer``: just after the first mark
    that ends at least ``min_size`` bytes in, if one does by ``max_size``."""
    start = max(0, min_size - _MARK_BITS)
    found = buffer.translate(_TABLE).find(_MARK, start, max_size)
    if found < 0:
        return None
    return found + _MARK_BITS
