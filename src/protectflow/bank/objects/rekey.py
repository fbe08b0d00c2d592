"""Moving a bank's objects from one key to another, one object at a time
(the object store's part of ``protectflow key rotate``; the rotation itself
is :mod:`protectflow.bank.rotation`).

Each call reads an object's stored bytes, finds which of the two keyrings
it is sealed under, and -- if it is the old one -- seals the same value under
the new keyring, writing it over the old object (atomically, as every
write) or, for a chunk, under its new name. An object already under the new
keyring is left as it is, so every call can be repeated after a crash; one
that opens under neither (damaged before the rotation, or planted) is left
as it is and said to be unreadable. Markers (chunk refs, index entries) are
re-made from the new keyring's marker of their area.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from protectflow.bank.objects._backend import ReadBuffers
from protectflow.bank.objects._header import KIND_BYTES, MARKER_AREAS
from protectflow.bank.objects.crypto import KIND_MARKER, Keyring
from protectflow.errors import BankError

__all__ = ["Moved", "move_chunk", "move_object"]

#: ``edit(kind, body)``: the body to seal under the new key (a manifest renamed).
Edit = Callable[[bytes, bytes], bytes]


class Moved(enum.Enum):
    """What a call found and did."""

    #: It was sealed under the old keyring; it is now under the new one.
    MOVED = "moved"
    #: It was under the new keyring already (a resumed rotation).
    ALREADY = "already"
    #: It opens under neither keyring: left as it was.
    UNREADABLE = "unreadable"
    #: It is not there (any more).
    GONE = "gone"


def _open(keyring: Keyring, key: str, data: bytes) -> tuple[bytes, bytes] | None:
    try:
        return keyring.open(key, data)
    except BankError:
        return None


def _is_marker(key: str, data: bytes) -> bool:
    return data[4:5] == KIND_MARKER and key.startswith(MARKER_AREAS)


def move_object(backend: Any, key: str, old: Keyring, new: Keyring, *,
                edit: Edit | None = None, new_key: str | None = None) -> Moved:
    """Re-seal the object under ``key`` from ``old`` to ``new``, in place or
    under ``new_key`` (then the old object is deleted); ``edit`` changes its
    body on the way. A marker made under ``new_key`` is not made durable:
    sync the store before relying on it.

    Raises
    ------
    OSError
        If the store refuses a read or a write.
    """
    try:
        data = backend.read(key)
    except FileNotFoundError:
        return Moved.GONE
    target = new_key or key
    if _is_marker(key, data):
        area = key.split("/", 1)[0]
        if data not in (old.marker(area), new.marker(area)):
            return Moved.UNREADABLE
        if data == new.marker(area) and target == key:
            return Moved.ALREADY
        if target == key:
            backend.write(target, (new.marker(area),))
        else:  # a ref under a chunk's new name: made as cheaply as a protect makes one
            backend.create_exclusive(target, (new.marker(area),), False)
    else:
        done = _open(new, key, data)
        if done is not None and target == key:
            return Moved.ALREADY
        opened = done or _open(old, key, data)
        if opened is None:
            return Moved.UNREADABLE
        kind, body = opened
        if done is None and edit is not None:  # a body under the new key was edited
            body = edit(kind, body)
        backend.write(target, new.seal(target, kind, body))
    if target != key:
        backend.delete(key)
    return Moved.MOVED


def move_chunk(backend: Any, key_of: Callable[[str], str], digest: str, old: Keyring,
               new: Keyring, buffers: ReadBuffers) -> tuple[Moved, str | None]:
    """Seal chunk ``digest`` (bank key ``key_of(digest)``) under ``new``, named
    by ``new``'s keyed hash of its bytes; the old chunk stays (the caller
    deletes it once nothing names it). The chunk is read and decrypted into
    ``buffers`` (the calling thread's: see :class:`ReadBuffers`).

    Returns
    -------
    tuple
        What was found, and the chunk's new name (None unless ``MOVED``:
        a chunk already under ``new`` is one this rotation wrote).

    Raises
    ------
    OSError
        If the store refuses a read or a write.
    """
    key = key_of(digest)
    try:
        data = backend.read_into(key, buffers)
    except FileNotFoundError:
        return Moved.GONE, None
    buffers.plain = ReadBuffers.at_least(buffers.plain, len(data))
    try:
        kind, body = old.open_into(key, data, buffers.plain)
    except BankError:
        return (Moved.ALREADY if _open(new, key, bytes(data)) is not None
                else Moved.UNREADABLE), None
    if kind != KIND_BYTES:  # not a chunk: nothing can name it by its bytes
        return Moved.UNREADABLE, None
    renamed = new.chunk_id(body)
    target = key_of(renamed)
    backend.create_exclusive(target, new.seal(target, kind, body), False)
    return Moved.MOVED, renamed
