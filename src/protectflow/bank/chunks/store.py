"""A content-addressed chunk store shared by every checkpoint of a bank.

Layout (bank-wide, outside any checkpoint)::

    chunks/<h[:2]>/<h>            a chunk: its bytes; ``h`` is their keyed hash
    refs/<h[:2]>/<h>/<owner>      empty: ``owner`` (a checkpoint's resource) uses h
    locks/chunks/<h[:2]>/<h>      a deleter's marker while it may delete h
    bad/chunks/<h[:2]>/<h>        h failed a check (verify, restore): see below

``owner`` is ``<checkpoint id>@<hash of the resource key>``, so two resources
of one checkpoint sharing a chunk hold a reference each.

The protocol -- lock-free for protects, one marker per chunk for deletes:

- **add** (protect): (1) create the ref; (2) wait while a live deletion
  marker exists; (3) if the chunk is absent, store it (create-if-absent).
- **release** (delete): delete the ref; if other refs remain, stop. Else
  (a) take the marker (create-if-absent, waiting for another deleter's);
  (b) list the refs again; (c) delete the chunk only if there are none;
  (d) remove the marker.

Guarantee: a chunk with a ref is never left deleted. If a protect's ref
exists by the deleter's listing (b), the deleter keeps the chunk. Otherwise
the ref came after (b), hence after (a): at step (2) the protect either sees
the marker and waits past (d) -- so past (c) -- or sees it gone; either way
its check (3) comes after any deletion and stores the chunk again. Two
deleters serialise on the marker and delete nothing a third checkpoint
references. A marker older than ``stale_after`` seconds is treated as a dead
deleter's; a deleter that finds its own marker that old does not delete (it
leaks the chunk instead), so the one assumption is that no deleter stalls for
``stale_after`` seconds *between* that check and the unlink that follows it.

Group commit: a store made with ``durable=False`` creates refs and chunks
without a per-object fsync; :meth:`ChunkStore.sync` then makes them durable
at once (one ``syncfs`` on a local bank). The caller syncs before it writes
anything naming them (a manifest), so a crash at any point never leaves a
manifest naming a chunk, or relying on a ref, that is not durably stored.
The protocol above needs only that objects be visible to other processes,
which they are as soon as they are created.

A chunk's name ``h`` is the keyed hash of its bytes under the bank's id key
(:meth:`ChunkStore.chunk_id`, HMAC-SHA256): equal data dedups, and without
the key the names say nothing about the data. Every read authenticates the
chunk's object, whose tag binds its bytes to its key ``chunks/<h[:2]>/<h>``
under the bank's key: no one without the key can make bytes that read back
under a name, nor move a chunk to another name, and bit rot fails the tag, so
a restore trusts what authenticates. A verify (``read(..., rehash=True)``)
also hashes the bytes again, which catches what the tag cannot: a writer
that sealed wrong bytes under a name (a bug, or a holder of the key) -- at
the cost of a second pass over every byte, which a restore does not pay.

Bad chunks: a read that finds a chunk corrupt (its bytes no longer match
its name: bit rot, a truncated file) records it in ``bad/chunks/``. A protect
never dedups onto a chunk in that list: :meth:`ChunkStore.add` with the good
bytes at hand (read from the source, checked against the name) writes the
chunk again and drops the mark, so the next checkpoint of that data is whole
again -- and so are the earlier ones that name the chunk.

The rule, as restic's (``check --read-data`` drops a damaged blob from the
index so that the next backup stores it again): a damaged chunk is found by a
read that checks it -- ``verify --read-data``, ``operations.check(...,
read_data=True)``, a restore -- and marked bad; the next protect that has those
bytes writes the chunk again (and says so: :attr:`ChunkStore.rewritten`),
which repairs every checkpoint naming it. A plain protect dedups onto a
chunk without reading it, so a chunk that rotted since the last check is
reused until a check finds it; ``protect --reread`` (``check_existing``)
reads back every chunk it would dedup onto and writes again any that fails.

Deletes and missing refs: refs are the fast path, but a ref can be lost (a
damaged bank, a hand-deleted folder) while a manifest still names its chunk.
So :func:`protectflow.bank.chunks.refs.release_chunks` deletes a chunk only
when, besides having no ref, no manifest of a live checkpoint names it; a
chunk it finds still named gets its refs back.

Files in and out of the store: :mod:`protectflow.plugins.builtin._chunkfiles`.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from protectflow._paths import segment
from protectflow.bank.objects._backend import ReadBuffers
from protectflow.errors import BankError, ChunkError, CorruptObjectError

__all__ = ["ChunkStore", "bad_key", "chunk_key", "owner_id", "ref_key", "sha256"]

CHUNKS = "chunks/"
REFS = "refs/"
LOCKS = "locks/chunks/"
BAD = "bad/chunks/"
#: Seconds after which a deletion marker is taken for a dead deleter's.
STALE_AFTER = 600.0
_POLL = 0.005


def sha256(data: bytes | bytearray | memoryview) -> str:
    """The hex SHA-256 of ``data`` (not a chunk's name: see :meth:`ChunkStore.chunk_id`)."""
    return hashlib.sha256(data).hexdigest()


def chunk_key(digest: str) -> str:
    """The bank key of chunk ``digest``."""
    return f"{CHUNKS}{digest[:2]}/{digest}"


def _ref_prefix(digest: str) -> str:
    return f"{REFS}{digest[:2]}/{digest}/"


def ref_key(digest: str, owner: str) -> str:
    """The bank key of ``owner``'s ref on chunk ``digest``."""
    return _ref_prefix(digest) + segment(owner)


def bad_key(digest: str) -> str:
    """The bank key marking chunk ``digest`` as having failed a check."""
    return f"{BAD}{digest[:2]}/{digest}"


def _lock_key(digest: str) -> str:
    return f"{LOCKS}{digest[:2]}/{digest}"


def owner_id(checkpoint_id: str, resource_key: str) -> str:
    """The ref owner for one resource of one checkpoint."""
    return f"{checkpoint_id}@{sha256(resource_key.encode())[:16]}"


class ChunkStore:
    """The chunks of ``bank`` as seen by one owner (a checkpoint's resource).

    Parameters
    ----------
    bank : Bank
        The bank (``checkpoint.bank``).
    owner : str
        From :func:`owner_id`.
    stale_after : float
        Seconds after which a deletion marker is considered abandoned.
    durable : bool
        Whether each ref and chunk is made durable as it is created; if
        false, call :meth:`sync` before committing anything that names them.
    """

    def __init__(self, bank: Any, owner: str, *, stale_after: float = STALE_AFTER,
                 durable: bool = True, check_existing: bool = False) -> None:
        self.bank = bank
        self.owner = owner
        self.stale_after = stale_after
        self.durable = durable
        self.check_existing = check_existing
        self._bad: frozenset[str] | None = None
        self._rewritten: list[str] = []
        self._rewritten_lock = threading.Lock()
        self._added = 0
        self._added_lock = threading.Lock()

    @property
    def rewritten(self) -> tuple[str, ...]:
        """The chunks :meth:`add` found damaged in the bank and stored again."""
        with self._rewritten_lock:
            return tuple(self._rewritten)

    @property
    def added_bytes(self) -> int:
        """The bytes this store object's :meth:`add` calls grew the bank by:
        the chunks they stored, as stored (compressed and encrypted)."""
        return self._added

    def _count(self, key: str) -> None:
        with contextlib.suppress(BankError):
            size = self.bank.object_size(key)
            with self._added_lock:
                self._added += size

    @property
    def checkpoint_id(self) -> str:
        """The checkpoint whose resource owns this store's refs."""
        return self.owner.rsplit("@", 1)[0]

    def chunk_id(self, data: bytes | bytearray | memoryview) -> str:
        """The name of a chunk holding ``data``: its keyed hash in this bank.

        Raises
        ------
        BankError
            If the bank's key cannot be found or made.
        """
        digest: str = self.bank.ensure_keyring().chunk_id(data)
        return digest

    def _ref_key(self, digest: str) -> str:
        return ref_key(digest, self.owner)

    def has_ref(self, digest: str) -> bool:
        """Whether this owner holds a ref on chunk ``digest``."""
        return bool(self.bank.has_object(self._ref_key(digest)))

    # -- bad chunks -------------------------------------------------------------------
    def known_bad(self, digest: str) -> bool:
        """Whether a check found chunk ``digest`` corrupt (and no protect has
        stored it again since). The list is read once per store: a protect
        pays one listing, of a folder that is normally empty."""
        if self._bad is None:
            self._bad = frozenset(key.rsplit("/", 1)[1]
                                  for key in self.bank.list_objects(BAD))
        return digest in self._bad

    def mark_bad(self, digest: str, why: str) -> None:
        """Record that chunk ``digest`` failed a check, so that no protect
        dedups onto it; quietly nothing on a bank that cannot be written (a
        read-only backup disk: the check still reports it)."""
        with contextlib.suppress(BankError):
            self.bank.update_object(bad_key(digest), {"at": time.time(), "why": why})

    # -- protect --------------------------------------------------------------------
    def add(self, digest: str, data: bytes | bytearray | memoryview | None = None,
            load: Callable[[], bytes] | None = None) -> bool:
        """Reference chunk ``digest``; store its bytes if the bank lacks them.

        ``data`` are the bytes, which the caller has just named ``digest``
        with :meth:`chunk_id` (they are not hashed again), or ``load`` reads them when
        needed (a protect that reuses an earlier manifest has not read the
        file): those are checked.

        Returns
        -------
        bool
            Whether this call stored the chunk's bytes.

        A chunk the bank holds but a check found corrupt (:meth:`known_bad`)
        is written again from these bytes, never deduplicated onto.

        Raises
        ------
        ChunkError
            If the bytes ``load`` returns do not hash to ``digest``.
        """
        self.bank.create_object(self._ref_key(digest), b"", durable=self.durable)
        self._wait_for_deleter(digest)
        key = chunk_key(digest)
        present = self.bank.has_object(key)
        if present and not self.known_bad(digest) and not (
                self.check_existing and (data is not None or load is not None)
                and not self._reads_back(digest)):
            return False
        if data is None:
            if load is None:
                raise ChunkError(f"chunk {digest} is missing from {self.bank.url} and "
                                 "there is no source to store it from")
            data = load()
            if self.chunk_id(data) != digest:
                raise ChunkError(f"chunk {digest}: its source changed while it was read")
        if not present:
            created = bool(self.bank.create_object(key, data, durable=self.durable))
            if created:
                self._count(key)
            return created
        self.bank.update_object(key, data)  # the good bytes replace the bad
        with contextlib.suppress(BankError):
            self.bank.delete_object(bad_key(digest))
        with self._rewritten_lock:
            self._rewritten.append(digest)
        return True

    def _reads_back(self, digest: str) -> bool:
        """Whether the stored chunk ``digest`` authenticates and hashes to its
        name (``check_existing``: a protect that trusts nothing it has not
        read); one that does not is marked bad by the read."""
        try:
            self.read(digest, rehash=True)
        except ChunkError:
            return False
        return True

    def add_ref(self, digest: str) -> bool:
        """Reference chunk ``digest`` without bytes to store (a repair);
        steps (1) and (2) of the protocol, then whether the chunk is there.
        Whether this call created the ref is not said: both cases are fine."""
        self.bank.create_object(self._ref_key(digest), b"", durable=self.durable)
        self._wait_for_deleter(digest)
        return bool(self.bank.has_object(chunk_key(digest)))

    def sync(self) -> None:
        """Make every ref and chunk added so far durable (group commit)."""
        if not self.durable:
            self.bank.sync()

    def _marker_age(self, digest: str) -> float | None:
        try:
            info = self.bank.get_object(_lock_key(digest))
        except BankError:
            return None
        return time.time() - float(info.get("at", 0)) if isinstance(info, dict) else 0.0

    def _wait_for_deleter(self, digest: str) -> None:
        while True:
            age = self._marker_age(digest)
            if age is None or age > self.stale_after:
                return
            time.sleep(_POLL)

    # -- read -------------------------------------------------------------------------
    def read(self, digest: str, *, rehash: bool = False) -> bytes:
        """The bytes of chunk ``digest``, authenticated (see the module's notes);
        ``rehash``: checked against their name too, as a verify does.

        Raises
        ------
        ChunkError
            If the chunk is missing or corrupt.
        """
        with self._chunk_errors(digest):
            data = self.bank.get_object(chunk_key(digest))
        if not isinstance(data, bytes) or (rehash and self.chunk_id(data) != digest):
            self.mark_bad(digest, "its bytes do not match its name")
            raise ChunkError(f"chunk {digest} in bank {self.bank.url} is corrupt: "
                             "its bytes do not match its hash")
        return data

    def reader(self) -> Callable[[str], bytes | memoryview]:
        """A :meth:`read` for one restore's threads that reuses each thread's
        buffers: what it returns is valid until that thread's next read.

        Raises (the returned function)
        ------
        ChunkError
            If the chunk is missing or corrupt.
        """
        local = threading.local()

        def read(digest: str) -> bytes | memoryview:
            buffers = getattr(local, "buffers", None)
            if buffers is None:
                buffers = local.buffers = ReadBuffers()
            with self._chunk_errors(digest):
                body: bytes | memoryview = self.bank.get_bytes_into(chunk_key(digest), buffers)
            return body
        return read

    @contextlib.contextmanager
    def _chunk_errors(self, digest: str) -> Iterator[None]:
        """A read of the chunk's object, its errors as the chunk's: missing,
        or corrupt (and then marked bad)."""
        try:
            yield
        except BankError as err:
            # Something that is no object (a FIFO, a device) is damage, not absence.
            if not isinstance(err, CorruptObjectError) and not self.bank.has_object(
                    chunk_key(digest)):
                raise ChunkError(f"chunk {digest} is missing from bank {self.bank.url}") from None
            self.mark_bad(digest, str(err))
            raise ChunkError(f"chunk {digest} in bank {self.bank.url} is corrupt: {err}") from None

    # -- delete -----------------------------------------------------------------------
    def release(self, digest: str) -> bool:
        """Drop this owner's reference; delete the chunk if it was the last.

        The bare protocol: it trusts the refs. A delete of a checkpoint goes
        through :func:`protectflow.bank.chunks.refs.release_chunks`, which also
        asks the live manifests before deleting anything.

        Returns
        -------
        bool
            Whether this call deleted the chunk.
        """
        return not self.drop_ref(digest) and self.delete_unreferenced(digest)

    def drop_ref(self, digest: str) -> bool:
        """Drop this owner's reference on ``digest``; whether others remain."""
        with contextlib.suppress(BankError):
            self.bank.delete_object(self._ref_key(digest))
        return self._has_refs(digest)

    def delete_unreferenced(self, digest: str) -> bool:
        """Delete chunk ``digest`` if no ref names it, under the deletion
        marker (steps (a) to (d) above); whether this call deleted it."""
        with self._marker(digest) as taken_at:
            if self._has_refs(digest):
                return False
            if time.time() - taken_at > self.stale_after:
                return False  # others may think us dead: leak rather than race
            try:
                self.bank.delete_object(chunk_key(digest))
            except BankError:
                return False
            with contextlib.suppress(BankError):
                self.bank.delete_object(bad_key(digest))
            return True

    def _has_refs(self, digest: str) -> bool:
        return bool(self.bank.list_objects(_ref_prefix(digest), limit=1))

    @contextlib.contextmanager
    def _marker(self, digest: str) -> Iterator[float]:
        key = _lock_key(digest)
        while True:
            taken_at = time.time()
            if self.bank.create_object(key, {"at": taken_at, "owner": self.owner}):
                break
            age = self._marker_age(digest)
            if age is not None and age > self.stale_after:
                with contextlib.suppress(BankError):
                    self.bank.delete_object(key)
            else:
                time.sleep(_POLL)
        try:
            yield taken_at
        finally:
            with contextlib.suppress(BankError):
                self.bank.delete_object(key)

    def orphan_refs(self) -> list[str]:
        """Chunks this owner references, found by scanning every ref.

        For a delete that finds no manifest (its protect died before
        committing one): slow, but it is the only way to find them.
        """
        suffix = "/" + segment(self.owner)
        return [key.split("/")[2] for key in self.bank.iter_objects(REFS)
                if key.endswith(suffix)]
