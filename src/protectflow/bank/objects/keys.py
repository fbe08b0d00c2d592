"""A bank's key, as ``protectflow key`` manages it: show, add or change a
password, export and import.

Where the key lives and how a bank is unlocked: :mod:`protectflow.bank.objects._keystore`.
An exported key file holds the master key in clear, exactly as the key file
in the config folder does: keep it as safe as the data it opens.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import attrs

from protectflow.bank.objects import _keystore
from protectflow.bank.objects._keydocs import BankConfig, PasswordEntry, b64
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


def _config(bank: Bank) -> BankConfig:
    config = _keystore.read_config(bank.backend, bank.url)
    if config is None:
        if _keystore.has_foreign_objects(bank.backend):
            raise _keystore.old_format_error(bank.url)
        raise BankNotFoundError(f"there is no bank at {bank.url} yet: a first protect makes it")
    return config


def _master(bank: Bank) -> tuple[BankConfig, bytes, list[str]]:
    config = _config(bank)
    master, opened = _keystore.find_master(bank.backend, bank.url, config,
                                           password_file=bank.password_file)
    bank.keyring  # noqa: B018 -- checks that this key belongs to the config
    return config, master, opened


def show_fingerprint(bank: Bank) -> KeyInfo:
    """The bank's id, its key's fingerprint and where the key is kept.

    Raises
    ------
    BankError
        If the bank does not exist, is of the old format, or its key cannot
        be found.
    """
    config = _config(bank)
    path = _keystore.key_file(config.id)
    return KeyInfo(bank=bank.url, bank_id=config.id, fingerprint=bank.keyring.fingerprint,
                   key_file=path if os.path.exists(path) else None,
                   passwords=tuple(sorted(_keystore.password_entries(bank.backend))))


def add_password(bank: Bank, password: str) -> str:
    """Wrap the bank's key by ``password`` into the bank (a new entry under
    ``keys/``), so that it opens without the key file.

    Returns
    -------
    str
        The new entry's id.

    Raises
    ------
    BankError
        If the password is empty or the bank's key cannot be found.
    """
    if not password:
        raise BankError("a bank's password cannot be empty")
    config, master, _ = _master(bank)
    entry_id = uuid.uuid4().hex[:16]
    entry = PasswordEntry.wrap(master, password, config.id)
    try:
        bank.backend.write(_keystore.KEYS + entry_id,
                           (json.dumps(entry.to_json()).encode("utf-8"),))
    except OSError as err:
        raise BankError(f"cannot write a key entry into bank {bank.url}: {err}") from err
    return entry_id


def change_password(bank: Bank, password: str) -> str:
    """Add ``password``, then remove the entries the current password opens
    (the one in ``$PROTECTFLOW_PASSWORD`` or typed at the prompt).

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
    _, _, opened = _master(bank)
    if not opened:
        raise BankError(f"bank {bank.url} opened with its key file, not a password: "
                        "use `protectflow key add-password`")
    new = add_password(bank, password)
    for entry_id in opened:
        bank.backend.delete(_keystore.KEYS + entry_id)
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
    config, master, _ = _master(bank)
    text = json.dumps({"bank": config.id, "url": bank.url,
                       "master_key": b64(master)}, indent=1)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
    except OSError as err:
        raise BankError(f"cannot write the key to {path}: {err}; give a new file") from err
    return fingerprint_of(master)


def import_key(bank: Bank, path: str) -> KeyInfo:
    """Install the key exported to ``path`` as the key file of ``bank`` in
    this user's config folder, after checking that it opens the bank.

    Raises
    ------
    BankError
        If the file is not a key of this bank, or a different key file is
        already installed for it.
    """
    config = _config(bank)
    master = _keystore.read_key_file(path, config.id)
    if master is None:
        raise BankError(f"no key file at {path}")
    _keystore.check_master(config, master, bank.url)
    installed = _keystore.read_key_file(_keystore.key_file(config.id), config.id)
    if installed is None:
        _keystore.write_key_file(config.id, master, bank.url)
    elif installed != master:
        raise BankError(f"a different key is installed for bank {bank.url} at "
                        f"{_keystore.key_file(config.id)}: move it away first")
    bank.forget_keys()
    return show_fingerprint(bank)
