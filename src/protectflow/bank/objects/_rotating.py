"""The mark of a key rotation in progress: ``rotation`` at the bank's root.

``protectflow key rotate`` re-encrypts every object of a bank under a new key
(:mod:`protectflow.bank.rotation`); while it runs, and until a rotation that
was killed is finished, the bank holds objects under two keys, and no other
command may read or write it. The mark says so to every reader before it
has a key: it is clear JSON, written beside ``config`` and as little to be
trusted. A forged or stale mark can only make commands refuse, with an error
saying to run ``protectflow key rotate``, which checks what it finds against
the rotation's own sealed state before doing anything.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from protectflow.errors import BankError, BankLockedError

__all__ = ["MARK", "RotationMark", "read_mark", "refuse_if_rotating", "remove_mark",
           "write_mark"]

MARK = "rotation"
_FORMAT = "protectflow-key-rotation"
_VERSION = 1
#: The most bytes of a mark read.
_MAX_BYTES = 4096


@attrs.frozen
class RotationMark:
    """Who started a rotation, when, and from which key."""

    owner: str
    started_at: str
    old_fingerprint: str

    def to_bytes(self) -> bytes:
        return json.dumps({"format": _FORMAT, "version": _VERSION, "owner": self.owner,
                           "started_at": self.started_at,
                           "from": self.old_fingerprint}, indent=1).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> RotationMark:
        """The mark in ``raw``; one that does not parse still marks a
        rotation (its fields then say so).
        """
        data: Any = None
        if len(raw) <= _MAX_BYTES:
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                data = None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return cls("(unreadable mark)", "(unknown)", "")
        return cls(*(_printable(data.get(k, "")) for k in ("owner", "started_at", "from")))

    def describe(self) -> str:
        return f"started at {self.started_at} by {self.owner}"


def _printable(value: object) -> str:
    """A field of the clear mark as messages may show it: anyone who can
    write the bank wrote it, so no control character (a terminal's escape
    sequences) and no more than 100 characters."""
    text = str(value)[:100]
    return "".join(c if c.isprintable() else "?" for c in text)


def read_mark(backend: Any, url: str) -> RotationMark | None:
    """The bank's rotation mark, or None when no rotation is in progress.

    Raises
    ------
    BankError
        If the bank cannot be read.
    """
    try:
        raw = backend.read_limited(MARK, _MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise BankError(f"cannot read the bank {url}: {err}") from err
    return RotationMark.from_bytes(raw)


def refuse_if_rotating(backend: Any, url: str) -> None:
    """Raise unless the bank is free of any key rotation.

    Raises
    ------
    BankLockedError
        If a rotation is in progress (or was killed), saying what to do.
    """
    mark = read_mark(backend, url)
    if mark is not None:
        raise BankLockedError(
            f"the bank {url} is in the middle of a key rotation ({mark.describe()}): its "
            "objects are under two keys until it ends, so nothing else may read or write "
            f"it. If that rotation is no longer running, finish it: `protectflow key rotate "
            f"--bank {url}`; nothing was read or written")


def write_mark(backend: Any, mark: RotationMark, *, replace: bool = False) -> bool:
    """Write the mark; without ``replace`` only if there is none (whether it did).

    Raises
    ------
    OSError
        If the store refuses the write.
    """
    if replace:
        backend.write(MARK, (mark.to_bytes(),))
        return True
    return bool(backend.create_exclusive(MARK, (mark.to_bytes(),)))


def remove_mark(backend: Any) -> None:
    """Remove the mark: the rotation is over."""
    backend.delete(MARK)
