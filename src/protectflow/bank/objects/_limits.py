"""How large each kind of bank object may be: the bound every read and every
decompression holds to.

Whoever can write the bank (without the key) can plant a huge file, a FIFO or
a device where an object should be; whoever holds the key can seal a small
zstd frame that inflates to terabytes. Neither may hang a reader or exhaust
its memory, so each object's plaintext is bounded by what its kind may hold,
by its key's area:

==============================  =========  ===================================
area                            bound      why
==============================  =========  ===================================
``chunks/``                     128 MiB    the largest chunk or pack a plugin
                                           may write (``chunk_size`` and
                                           ``pack_size`` are capped at 64 MiB;
                                           a pack overshoots by under a file)
``refs/``, ``index/``,          64 KiB     markers and small entries
``locks/``, ``bad/``
``checkpoints/<id>/data/``      512 MiB    a plugin's data: a manifest of
                                           millions of files
anything else (records,         64 MiB     a record of 100,000 resources is
journals, runs, leases, ...)               tens of MB
==============================  =========  ===================================

A stored object is never larger than its plaintext plus
:data:`~protectflow.bank.objects.crypto.OVERHEAD` (a payload is compressed only
when that shrinks it), so the same bound caps what is read from storage.
"""

from __future__ import annotations

__all__ = ["MAX_CHUNK", "max_plain_size", "max_stored_size"]

#: The largest chunk (or pack of small files) a plugin may store.
MAX_CHUNK = 128 << 20
_SMALL = 64 << 10
_PLUGIN_DATA = 512 << 20
_OTHER = 64 << 20
_SMALL_AREAS = ("refs/", "index/", "locks/", "bad/")
#: What a sealed object adds to its payload (see crypto.OVERHEAD).
_SEAL_OVERHEAD = 6 + 12 + 16


def max_plain_size(key: str) -> int:
    """The most bytes the object under ``key`` may hold once opened."""
    if key.startswith("chunks/"):
        return MAX_CHUNK
    if key.startswith(_SMALL_AREAS):
        return _SMALL
    if key.startswith("checkpoints/") and "/data/" in key:
        return _PLUGIN_DATA
    return _OTHER


def max_stored_size(key: str) -> int:
    """The most bytes the object under ``key`` may take in storage."""
    return max_plain_size(key) + _SEAL_OVERHEAD
