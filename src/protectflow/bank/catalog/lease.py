"""Leases: the "busy" flag of a checkpoint, safe across processes.

A lease is a sequence of immutable generations, ``<base>/<generation>``,
each created with create-if-absent (:meth:`Bank.create_object`). The newest
generation is the lease's state: held by its owner until ``expires_at``,
unless it is a release record. To take the lease a process reads the newest
generation ``n``; if it is free (released or expired) it creates ``n + 1``.
Two processes racing for ``n + 1`` cannot both win, so on a local folder (and
on ``memory://`` within a process) at most one holder exists at any time --
assuming clocks agree and holders renew before expiry. A holder renews by
rewriting its own generation and then checking that no ``n + 1`` appeared.

A resumed operation may also take over a lease that has not expired when its
owner is certainly dead (:func:`owner_is_dead`): an owner ``user@host:pid``
naming this host and a process id that no longer exists. Anything else -- an
owner on another host, a string of another shape, a pid that exists (even
reused by an unrelated process) -- counts as alive, so a live owner is never
overtaken. This assumes host names are unique among the processes sharing a
bank.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import attrs

from protectflow._fields import Fail, Fields
from protectflow.bank.objects.store import Bank
from protectflow.errors import BankError, BankLockedError, CheckpointBusyError, CorruptObjectError

__all__ = ["Lease", "owner_is_dead"]

_KEEP_GENERATIONS = 2
_RACE_RETRIES = 5


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` (``user@host:pid``) is a process of this host that no
    longer exists. ``False`` whenever that is not certain."""
    rest, sep, pid_text = owner.rpartition(":")
    host = rest.rpartition("@")[2]
    if not sep or not pid_text.isdigit() or host != socket.gethostname():
        return False
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but not ours to signal
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped still answers ``kill(pid, 0)``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@attrs.frozen
class Lease:
    """One generation of a lease: ``owner`` runs ``operation`` until ``expires_at``."""

    owner: str
    operation: str
    expires_at: float
    generation: int
    token: str
    released: bool = False

    def active(self, now: float | None = None) -> bool:
        """Whether the lease is held at ``now`` (default: the current time)."""
        now = time.time() if now is None else now
        return not self.released and self.expires_at > now

    def describe(self) -> str:
        """``'restore by alice (lease expires 2024-...Z)'``."""
        return f"{self.operation} by {self.owner} (lease expires {_iso(self.expires_at)})"

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> Lease:
        """The lease :meth:`to_json` wrote.

        Raises
        ------
        Exception
            What ``fail`` makes, naming the field missing or of the wrong type.
        """
        fields = Fields(data, "lease", fail)
        return cls(owner=fields.get("owner", str), operation=fields.get("operation", str),
                   expires_at=float(fields.get("expires_at", float)),
                   generation=fields.get("generation", int), token=fields.get("token", str),
                   released=fields.default("released", bool, False))


class LeaseKeeper:
    """The lease stored under ``base`` in ``bank``; ``name`` is used in messages.
    With ``guard`` (all but a key rotation's own lease), a lease is refused
    while a key rotation has the bank (:meth:`_refuse_mid_rotation`)."""

    def __init__(self, bank: Bank, base: str, name: str, *, guard: bool = True) -> None:
        self.bank = bank
        self.base = base.rstrip("/") + "/"
        self.name = name
        self.guard = guard

    def _key(self, generation: int) -> str:
        return f"{self.base}{generation:012d}"

    def latest(self) -> Lease | None:
        """The newest generation, held or not; None if there is none.

        Raises
        ------
        CorruptObjectError
            If the newest generation is corrupt: nobody can tell whether it
            is held (``protectflow checkpoints gc`` removes it).
        """
        for key in self.bank.list_objects(self.base, limit=3, sort_dir="desc"):
            try:
                value = self.bank.get_object(key)
            except BankError as err:
                if not self.bank.has_object(key):
                    continue  # pruned between the listing and the read
                raise self._corrupt(key, str(err)) from None
            return Lease.from_json(value, self._failing(key))
        return None

    def _failing(self, key: str) -> Fail:
        return lambda why: self._corrupt(key, f"not a lease: {why}")

    def _corrupt(self, key: str, why: str) -> CorruptObjectError:
        return CorruptObjectError(f"the lease of {self.name} is corrupt ({key} in "
                                  f"{self.bank.url}: {why}); `protectflow checkpoints gc` "
                                  "removes it", key=key)

    def remove_corrupt(self) -> list[str]:
        """Replace each generation that cannot be read as a lease with a
        released one (gc's remedy: a lease nobody can read protects nothing,
        and deleting it would bring an older generation back); their keys."""
        replaced = []
        for key in self.bank.list_objects(self.base):
            try:
                Lease.from_json(self.bank.get_object(key), self._failing(key))
            except BankError:
                freed = Lease(owner="protectflow-gc", operation="gc", expires_at=0.0,
                              generation=int(key.rsplit("/", 1)[1]), token=uuid.uuid4().hex,
                              released=True)
                with contextlib.suppress(BankError):
                    self.bank.update_object(key, freed.to_json())
                    replaced.append(key)
        return replaced

    def current(self, now: float | None = None) -> Lease | None:
        """The lease if someone holds it at ``now``, else None."""
        lease = self.latest()
        return lease if lease is not None and lease.active(now) else None

    def acquire(self, operation: str, owner: str, *, ttl: float,
                now: float | None = None, reclaim_dead: bool = False) -> Lease:
        """Take the lease for ``operation``; with ``reclaim_dead``, also when
        its holder is a dead process of this host (:func:`owner_is_dead`).

        Raises
        ------
        CheckpointBusyError
            If another operation holds it, naming that operation.
        """
        for _ in range(_RACE_RETRIES):
            latest = self.latest()
            if latest is not None and latest.active(now) and not (
                    reclaim_dead and owner_is_dead(latest.owner)):
                raise CheckpointBusyError(f"{self.name} is busy: {latest.describe()}; wait "
                                          "for it to finish or for its lease to expire")
            start = time.time() if now is None else now
            lease = Lease(owner=owner, operation=operation, expires_at=start + ttl,
                          generation=1 if latest is None else latest.generation + 1,
                          token=uuid.uuid4().hex)
            if self.bank.create_object(self._key(lease.generation), lease.to_json()):
                if self.guard:
                    self._refuse_mid_rotation(lease)
                self._prune(lease.generation)
                return lease
        raise CheckpointBusyError(f"{self.name} is contended: could not take its lease for "
                                  f"{operation} in {_RACE_RETRIES} tries")

    def _refuse_mid_rotation(self, lease: Lease) -> None:
        """Take the new generation back when a key rotation has the bank.

        A process that unlocked the bank before a ``key rotate`` began still
        holds the old key. The rotation writes its mark, then looks for busy
        checkpoints; this looks for the mark after taking the lease: one of
        the two sees the other, so no operation runs across a rotation.
        """
        try:
            self.bank.refuse_if_rotating()
        except BankLockedError:
            with contextlib.suppress(BankError):  # deleting needs no key
                self.bank.delete_object(self._key(lease.generation))
            raise

    def _check_held(self, lease: Lease, action: str) -> None:
        latest = self.latest()
        if latest is None or latest.token != lease.token:
            holder = latest.describe() if latest is not None else "nobody"
            raise CheckpointBusyError(f"cannot {action} the lease of {self.name} for "
                                      f"{lease.operation}: it was lost; now held by {holder}")

    def renew(self, lease: Lease, *, ttl: float) -> Lease:
        """Extend a held lease to ``ttl`` seconds from now.

        Raises
        ------
        BankError
            If the lease expired.
        CheckpointBusyError
            If another process took it.
        """
        if not lease.active():
            raise BankError(f"cannot renew the lease of {self.name} for {lease.operation}: "
                            f"it expired at {_iso(lease.expires_at)}; renew before expiry")
        self._check_held(lease, "renew")
        renewed = attrs.evolve(lease, expires_at=time.time() + ttl)
        self.bank.update_object(self._key(lease.generation), renewed.to_json())
        if self.bank.has_object(self._key(lease.generation + 1)):
            raise CheckpointBusyError(f"cannot renew the lease of {self.name} for "
                                      f"{lease.operation}: another process took it over")
        return renewed

    def release(self, lease: Lease) -> None:
        """Give the lease up; a no-op if it was already lost or released."""
        freed = attrs.evolve(lease, generation=lease.generation + 1, released=True,
                             expires_at=0.0, token=uuid.uuid4().hex)
        if self.bank.create_object(self._key(freed.generation), freed.to_json()):
            self._prune(freed.generation)

    def _prune(self, newest: int) -> None:
        # Only the newest generation counts; older ones are history.
        keys = self.bank.list_objects(self.base)
        for key in keys[:-_KEEP_GENERATIONS]:
            if int(key.rsplit("/", 1)[1]) < newest:
                with contextlib.suppress(BankError):  # another process pruned it first
                    self.bank.delete_object(key)
