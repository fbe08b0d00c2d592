"""What a key rotation keeps in the bank while it runs, under ``rotating/``::

    rotating/state          sealed under the NEW key: the old master key, which
                            phases are done, where the new key is kept
    rotating/map/<n>        sealed under the new key: batches of {old chunk
                            name: new chunk name}, one per batch of chunks done
    rotating/keys/<id>      clear: password entries wrapping the new key, moved
                            into keys/ when the rotation ends
    rotating/lease/<gen>    sealed under the OLD key: the rotation's lease

The state and the map are sealed under the new key: only who has the new
key can read that chunks were renamed, and the old master key travels
inside, so a resumed rotation needs the new key alone. (Sealing the new key
under the old one instead would hand it to anyone who kept the old key and
a copy of the bank during the rotation.) The lease is sealed under the old
key, which a rotation starting, or resuming, has either way.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Any

import attrs

from protectflow.bank.objects.store import Bank
from protectflow.errors import BankError

__all__ = ["KEYS", "LEASE", "MAP", "ROTATING", "STATE", "RotationState", "load_map",
           "save_map"]

ROTATING = "rotating/"
STATE = ROTATING + "state"
MAP = ROTATING + "map/"
KEYS = ROTATING + "keys/"
LEASE = ROTATING + "lease"
_VERSION = 1


@attrs.frozen
class RotationState:
    """Where a rotation is: what the next run of ``key rotate`` picks up."""

    old_master: bytes = attrs.field(repr=False)
    started_at: str
    #: Whether the new key goes to the key file (``<id>.next.key`` until the end).
    key_file: bool
    #: The new password entries (under ``rotating/keys/`` until the end).
    entries: tuple[str, ...]
    chunks_done: bool = False
    objects_done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"version": _VERSION, "old_master": base64.b64encode(self.old_master).decode(),
                "started_at": self.started_at, "key_file": self.key_file,
                "entries": list(self.entries), "chunks_done": self.chunks_done,
                "objects_done": self.objects_done}

    @classmethod
    def from_json(cls, data: Any, url: str) -> RotationState:
        """The state stored as ``data`` (authenticated already).

        Raises
        ------
        BankError
            If it is of another version or shape.
        """
        try:
            if data["version"] != _VERSION:
                raise BankError(f"the key rotation of bank {url} was started by another "
                                f"protectflow (state version {data['version']!r}): finish "
                                "it with that one")
            return cls(base64.b64decode(data["old_master"], validate=True),
                       str(data["started_at"]), bool(data["key_file"]),
                       tuple(str(e) for e in data["entries"]), bool(data["chunks_done"]),
                       bool(data["objects_done"]))
        except (KeyError, TypeError, ValueError, binascii.Error) as err:
            raise BankError(f"the key rotation state of bank {url} is damaged ({err!r}); "
                            "restore the bank from a copy") from None

    def save(self, bank: Bank) -> None:
        """Write it (sealed under ``bank``'s key, the new one).

        Raises
        ------
        BankError
            If the bank refuses the write.
        """
        bank.update_object(STATE, self.to_json())


def _batches(bank: Bank) -> Iterator[str]:
    return bank.iter_objects(MAP)


def load_map(bank: Bank) -> tuple[dict[str, str], int]:
    """Every chunk renamed so far ``{old: new}``, and the next batch's number.

    Raises
    ------
    BankError
        If a batch does not authenticate under ``bank``'s (the new) key.
    """
    names: dict[str, str] = {}
    count = 0
    for key in _batches(bank):
        batch = bank.get_object(key)
        if not isinstance(batch, dict):
            raise BankError(f"the key rotation's chunk map {key} in {bank.url} is damaged")
        names.update(batch)
        count = max(count, int(key.rsplit("/", 1)[1]) + 1)
    return names, count


def save_map(bank: Bank, number: int, batch: dict[str, str]) -> None:
    """Write one batch of renamed chunks (after the chunks it names are durable).

    Raises
    ------
    BankError
        If the bank refuses the write.
    """
    bank.update_object(f"{MAP}{number:09d}", batch)
