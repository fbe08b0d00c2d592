"""A bank section: the bank's interface under a key prefix, optionally read-only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO

from protectflow._paths import validate_key
from protectflow.bank.objects._header import Value
from protectflow.bank.objects.store import Bank
from protectflow.errors import BankError

__all__ = ["BankSection"]


class BankSection:
    """The part of a bank under ``prefix``, with keys relative to it.

    Parameters
    ----------
    bank : Bank
        The bank holding the section.
    prefix : str
        A key prefix naming the section, e.g. ``checkpoints/ID/data/server``;
        a trailing ``/`` is implied.
    read_only : bool
        Refuse writes and deletes with :class:`BankError`.

    Raises
    ------
    BankError
        If ``prefix`` is not a valid key.
    """

    def __init__(self, bank: Bank, prefix: str, read_only: bool = False) -> None:
        self.bank = bank
        self.prefix = validate_key(prefix.rstrip("/"), what="section prefix") + "/"
        self.read_only = read_only

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"BankSection({self.bank!r}, {self.prefix!r}{mode})"

    @property
    def is_writable(self) -> bool:
        """Whether writes and deletes are allowed (Karbor's name)."""
        return not self.read_only

    def _key(self, key: str) -> str:
        validate_key(key)
        return self.prefix + key

    def _check_writable(self, action: str, key: str) -> None:
        if self.read_only:
            raise BankError(f"cannot {action} {key!r}: bank section {self.prefix!r} "
                            "is read-only")

    def subsection(self, name: str, read_only: bool | None = None) -> BankSection:
        """The section under ``name`` within this one; read-only if this one is."""
        ro = self.read_only if read_only is None else (read_only or self.read_only)
        return BankSection(self.bank, self._key(name), read_only=ro)

    def update_object(self, key: str, value: Value) -> None:
        """Store ``value`` under ``key`` in the section; see :meth:`Bank.update_object`.

        Raises
        ------
        BankError
            If the section is read-only or the key invalid.
        """
        self._check_writable("write", key)
        self.bank.update_object(self._key(key), value)

    def get_object(self, key: str) -> Value:
        """Return the value under ``key``; see :meth:`Bank.get_object`.

        Raises
        ------
        BankError
            If the key is invalid or holds no object.
        """
        return self.bank.get_object(self._key(key))

    def has_object(self, key: str) -> bool:
        """Whether ``key`` holds an object in the section."""
        return self.bank.has_object(self._key(key))

    def delete_object(self, key: str) -> None:
        """Delete ``key`` from the section; see :meth:`Bank.delete_object`.

        Raises
        ------
        BankError
            If the section is read-only, or the key invalid or missing.
        """
        self._check_writable("delete", key)
        self.bank.delete_object(self._key(key))

    def list_objects(
        self,
        prefix: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
        sort_dir: str | None = None,
    ) -> list[str]:
        """Keys in the section, relative to it; see :meth:`Bank.list_objects`.

        Raises
        ------
        BankError
            If the prefix is invalid or ``sort_dir`` unknown.
        """
        full_marker = None if marker is None else self.prefix + marker
        keys = self.bank.list_objects(self.prefix + (prefix or ""), limit=limit,
                                      marker=full_marker, sort_dir=sort_dir)
        n = len(self.prefix)
        return [k[n:] for k in keys]

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """Stream a large object into ``key``; see :meth:`Bank.open_write`.

        Raises
        ------
        BankError
            If the section is read-only or the key invalid.
        """
        self._check_writable("write", key)
        with self.bank.open_write(self._key(key)) as f:
            yield f

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        """Stream the object under ``key``; see :meth:`Bank.open_read`.

        Raises
        ------
        BankError
            If the key is invalid or holds no object.
        """
        with self.bank.open_read(self._key(key)) as f:
            yield f
