"""The moving of a bank's objects from the old key to the new: the chunks
first (each read, named afresh by the new key's hash of its bytes, sealed
under the new key beside the old one), then every other object (re-sealed
in place; manifests renamed to the chunks' new names, refs moved under
them), then the old chunks dropped.

Each batch is made durable before anything records it (the chunks before
the map batch naming them, the refs before the batch counts as done), and
every object is moved by :mod:`protectflow.bank.objects.rekey`, which leaves
an object already under the new key alone: so a rotation killed at any
point runs again from its last recorded step and ends the same.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from itertools import islice
from typing import TypeVar

from protectflow._paths import RESERVED, TEMP_PREFIX
from protectflow.bank.catalog.lease import Lease, LeaseKeeper
from protectflow.bank.chunks.refs import renamed_manifest
from protectflow.bank.chunks.store import BAD, CHUNKS, LOCKS, REFS, bad_key, chunk_key
from protectflow.bank.objects._backend import ReadBuffers
from protectflow.bank.objects._header import KIND_BYTES, KIND_JSON, KIND_STR
from protectflow.bank.objects.crypto import Keyring
from protectflow.bank.objects.rekey import Moved, move_chunk, move_object
from protectflow.bank.objects.store import Bank
from protectflow.bank.rotation._state import ROTATING, load_map, save_map
from protectflow.errors import BankError

__all__ = ["Mover", "Renewer"]

T = TypeVar("T")
#: Chunks per batch: each batch is one map object and one sync.
CHUNK_BATCH = 64
#: Other objects per batch: one sync (for the refs made under new names).
OBJECT_BATCH = 512
#: Seconds between the syncs made while a batch of chunks is being written
#: (as a protect does: the disk writes while the threads read and seal).
_EARLY_SYNC = 0.25
#: Top-level folders that are not moved object by object.
_SKIP = frozenset({CHUNKS, ROTATING, *RESERVED})
#: A manifest area: what :func:`protectflow.bank.chunks.refs.named_chunks` reads.
_MANIFEST = re.compile(r"checkpoints/[^/]+/data/")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


class Renewer:
    """Renews the rotation's lease every third of its life, on a thread; a
    lease lost (another rotation took over) stops the rotation at its next step."""

    def __init__(self, keeper: LeaseKeeper, lease: Lease, ttl: float) -> None:
        self.keeper, self.lease, self.ttl = keeper, lease, ttl
        self.lost: BankError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="protectflow-rotate-lease",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.lease = self.keeper.renew(self.lease, ttl=self.ttl)
            except BankError as err:
                self.lost = err
                return

    def check(self) -> None:
        """Raise if the lease was lost.

        Raises
        ------
        BankError
            Saying so; the rotation that took it over goes on.
        """
        if self.lost is not None:
            raise BankError(f"the key rotation stopped: {self.lost}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _edit_manifest(names: Mapping[str, str]) -> Callable[[bytes, bytes], bytes]:
    """A body edit renaming the chunks a manifest names (JSON, or JSON text)."""
    def edit(kind: bytes, body: bytes) -> bytes:
        if kind not in (KIND_JSON, KIND_STR, KIND_BYTES):
            return body
        try:
            value = json.loads(body)
            renamed = renamed_manifest(value, names)
        except (ValueError, RecursionError):
            return body  # not JSON: it names no chunk
        if renamed == value:
            return body
        return json.dumps(renamed, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return edit


class Mover:
    """Moves every object of ``bank`` from ``old`` to ``new`` (see the module)."""

    def __init__(self, bank: Bank, old: Keyring, new: Keyring, *, step: Callable[[], None],
                 workers: int = 4) -> None:
        self.backend = bank.backend
        self.old_bank, self.new_bank = bank.with_keyring(old), bank.with_keyring(new)
        self.old, self.new = old, new
        self.step, self.workers = step, workers
        self.unreadable: list[str] = []
        self.moved = 0
        self._local = threading.local()  # each thread's read buffers, chunk after chunk

    def chunks(self) -> dict[str, str]:
        """Seal every chunk under the new key, under its new name; the map of
        every chunk renamed (this run's and earlier runs')."""
        names, number = load_map(self.new_bank)
        seen = set(names) | set(names.values())
        listed = (key.rsplit("/", 1)[1] for key in self.old_bank.iter_objects(CHUNKS))
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for batch in batched((d for d in listed if d not in seen), CHUNK_BATCH):
                futures = [pool.submit(self._move_chunk, d) for d in batch]
                # meanwhile, flush what is written so far: the disk works while
                # the threads read and seal, and the sync below has little left
                while wait(futures, timeout=_EARLY_SYNC).not_done:
                    self.backend.sync()
                done = [f.result() for f in futures]
                moved = {d: new for d, (how, new) in zip(batch, done, strict=True)
                         if how is Moved.MOVED and new is not None}
                self.unreadable += [chunk_key(d) for d, (how, _) in zip(batch, done, strict=True)
                                    if how is Moved.UNREADABLE]
                self.backend.sync()  # the chunks durable before the map names them
                if moved:
                    save_map(self.new_bank, number, moved)
                    number += 1
                    names.update(moved)
                    seen.update(moved.values())
                self.moved += len(moved)
                self.step()
        return names

    def _move_chunk(self, digest: str) -> tuple[Moved, str | None]:
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = ReadBuffers()
        return move_chunk(self.backend, chunk_key, digest, self.old, self.new, buffers)

    def objects(self, names: Mapping[str, str]) -> None:
        """Re-seal every other object under the new key (see the module)."""
        edit = _edit_manifest(names)
        renamed = frozenset(names.values())
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for batch in batched(self._other_keys(renamed), OBJECT_BATCH):
                done = list(pool.map(lambda key: self._move_object(key, names, edit), batch))
                self.unreadable += [k for k, how in zip(batch, done, strict=True)
                                    if how is Moved.UNREADABLE]
                self.moved += sum(how is Moved.MOVED for how in done)
                self.backend.sync()  # the refs made under new names, durable
                # no folder left named after a chunk's old name; pruned here, not
                # in the threads, which may be making a folder another just emptied
                for folder in sorted({k.rpartition("/")[0] for k in batch
                                      if k.startswith((REFS, BAD))}, reverse=True):
                    self.backend.prune(folder)
                self.step()

    def _other_keys(self, renamed: frozenset[str]) -> Iterator[str]:
        """Every key but the chunks', the bank's own and the rotation's; not
        the refs and bad marks this rotation made under new names."""
        for name, is_dir in sorted(self.backend.listdir("")):
            if name.startswith(TEMP_PREFIX) or name + ("/" if is_dir else "") in _SKIP:
                continue
            if not is_dir:
                yield name
                continue
            for key in self.old_bank.iter_objects(name + "/"):
                parts = key.split("/")
                if len(parts) == 4 and key.startswith((REFS, BAD)) and (
                        parts[2] if key.startswith(REFS) else parts[3]) in renamed:
                    continue
                yield key

    def _move_object(self, key: str, names: Mapping[str, str],
                     edit: Callable[[bytes, bytes], bytes]) -> Moved:
        parts = key.split("/")
        if key.startswith(LOCKS):  # a dead deleter's: no operation runs now
            self.backend.delete(key)
            return Moved.GONE
        new_key = None
        if key.startswith(REFS) and len(parts) == 4 and parts[2] in names:
            renamed = names[parts[2]]
            new_key = f"{REFS}{renamed[:2]}/{renamed}/{parts[3]}"
        elif key.startswith(BAD) and len(parts) == 4 and parts[3] in names:
            new_key = bad_key(names[parts[3]])
        return move_object(self.backend, key, self.old, self.new, new_key=new_key,
                           edit=edit if _MANIFEST.match(key) else None)

    def drop_old_chunks(self, names: Mapping[str, str]) -> None:
        """Delete the chunks under their old names (nothing names them now)."""
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            list(pool.map(lambda d: self.backend.delete(chunk_key(d)), names))
        for folder in sorted({chunk_key(d).rpartition("/")[0] for d in names}):
            self.backend.prune(folder)


def describe_unreadable(keys: list[str], url: str) -> tuple[str, ...]:
    """One problem per object that opened under neither key."""
    return tuple(f"{key} in {url} opens under neither the old key nor the new one: it was "
                 "damaged before the rotation (or planted) and is left as it was"
                 for key in sorted(keys))

