"""A bank's key, as ``protectflow key`` manages it: show, add or change a
password, export and import (``rotate``: :mod:`protectflow.bank.rotation`).

Where the key lives and how a bank is unlocked: :mod:`protectflow.bank.objects._keystore`.
An exported key file holds the master key in clear, exactly as the key file
in the config folder does: keep it as safe as the data it opens.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import attrs

from protectflow.bank.objects import _keyfiles, _keystore, _passwords
from protectflow.bank.objects._passwords import PasswordEntry
from protectflow.bank.objects._rotating import refuse_if_rotating
from protectflow.bank.objects.crypto import fingerprint_of
from protectflow.bank.objects.store import Bank
from protectflow.errors import BankError, BankNotFoundError

__all__ = ["KeyInfo", "add_password", "change_password", "export_key", "import_key",
           "show_fingerprint"]


@attrs.frozen
class KeyInfo:
    """What ``protectflow key show`` prints about a bank's key."""

    bank: str
    bank_id: str
    fingerprint: str
    key_file: str | None
    passwords: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=False) | {"passwords": list(self.passwords)}


def config_of(bank: Bank) -> _keystore.BankConfig:
    """The bank's config.

    Raises
    ------
    BankError
        If there is no bank, or one of the old format.
    """
    config = _keystore.read_config(bank.backend, bank.url)
    if config is None:
        if _keystore.has_foreign_objects(bank.backend):
            raise _keystore.old_format_error(bank.url)
        raise BankNotFoundError(f"there is no bank at {bank.url} yet: a first protect makes it")
    return config


def _master(bank: Bank) -> tuple[_keystore.BankConfig, _keystore.Unlocked]:
    config = config_of(bank)
    refuse_if_rotating(bank.backend, bank.url)
    found = _keystore.find_master(bank.backend, bank.url, config,
                                  password_file=bank.password_file)
    _keystore.check_master(config, found.master, bank.url)
    return config, found


def show_fingerprint(bank: Bank) -> KeyInfo:
    """The bank's id, its key's fingerprint and where the key is kept.

    Raises
    ------
    BankError
        If the bank does not exist, is of the old format, or its key cannot
        be found.
    """
    config = config_of(bank)
    path = _keyfiles.key_file(config.id)
    fingerprint = bank.keyring.fingerprint
    return KeyInfo(bank=bank.url, bank_id=config.id, fingerprint=fingerprint,
                   key_file=path if _keyfiles.read_key(config.id) is not None else None,
                   passwords=tuple(_passwords.password_entries(bank.backend)))


def add_password(bank: Bank, password: str | Callable[[], str]) -> str:
    """Wrap the bank's key by ``password`` into the bank (a new entry under
    ``keys/``), so that it opens without the key file.

    ``password`` may be a function that gives it: it is called once the bank
    is open, so that a prompt asks for the current password first.

    Returns
    -------
    str
        The new entry's id.

    Raises
    ------
    BankError
        If the password is empty or the bank's key cannot be found.
    """
    config, found = _master(bank)
    return _wrap(bank, config, found.master, password)


def _wrap(bank: Bank, config: _keystore.BankConfig, master: bytes,
          password: str | Callable[[], str]) -> str:
    """A new password entry wrapping ``master`` by ``password`` (or what it gives)."""
    text = password() if callable(password) else password
    if not text:
        raise BankError("a bank's password cannot be empty")
    return _passwords.write_entry(bank.backend, PasswordEntry.wrap(master, text, config.id))


def change_password(bank: Bank, password: str | Callable[[], str]) -> str:
    """Add ``password``, then remove the entries the current password opens
    (the one in ``$PROTECTFLOW_PASSWORD`` or typed at the prompt: asked
    before ``password`` is called, when it is a function).

    Returns
    -------
    str
        The new entry's id.

    Raises
    ------
    BankError
        If the bank opens with its key file rather than a password (then use
        :func:`add_password`), or as :func:`add_password`.
    """
    config, found = _master(bank)
    if found.password is None:
        raise BankError(f"bank {bank.url} opened with its key file, not a password: "
                        "use `protectflow key add-password`")
    old = _keystore.entries_opening(bank.backend, config, found.password, found.master)
    new = _wrap(bank, config, found.master, password)
    for entry_id in old:
        if entry_id != new:
            bank.backend.delete(_passwords.KEYS + entry_id)
    _keystore.forget_unlocked()
    return new


def export_key(bank: Bank, path: str) -> str:
    """Write the bank's master key into a new file at ``path`` (0600).

    Returns
    -------
    str
        The key's fingerprint.

    Raises
    ------
    BankError
        If ``path`` exists or the bank's key cannot be found.
    """
    config, found = _master(bank)
    _keyfiles.write_export(path, config.id, found.master, bank.url)
    return fingerprint_of(found.master)


def import_key(bank: Bank, path: str) -> KeyInfo:
    """Install the key exported to ``path`` as the key file of ``bank`` in
    this user's config folder, after checking that it opens the bank.

    Raises
    ------
    BankError
        If the file is not a key of this bank (or not a regular file), or a
        different key file is already installed for it.
    """
    config = config_of(bank)
    refuse_if_rotating(bank.backend, bank.url)
    if not os.path.lexists(path):
        raise BankError(f"no key file at {path}")
    master = _keyfiles.exported_key(path, config.id)
    _keystore.check_master(config, master, bank.url)
    installed = _keyfiles.read_key(config.id)
    if installed is None:
        _keyfiles.write_key(config.id, master, bank.url)
    elif installed != master:
        raise BankError(f"a different key is installed for bank {bank.url} at "
                        f"{_keyfiles.key_file(config.id)}: move it away first")
    bank.forget_keys()
    return show_fingerprint(bank)
