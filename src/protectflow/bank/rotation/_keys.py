"""A key rotation's two keys: the new one made and kept where the end of the
rotation installs it, found again by a rotation that resumes, and installed.

Where the new key waits while the objects move to it:

- a bank that opened with its key file: ``<bank id>.next.key`` beside it
  (see :mod:`protectflow.bank.objects._keyfiles`), renamed over the key file
  at the end;
- a bank with password entries: one new entry, wrapping the new key by the
  new password (or, with ``keep_password``, by the one the bank opened
  with), under ``rotating/keys/``; at the end it moves into ``keys/`` and
  every other entry -- the old key's -- is removed.

A rotation that resumes finds the new key as the key that opens the
rotation's sealed state: from the next key file, the key file (once
installed), or an entry under ``rotating/keys/`` or ``keys/`` that the
password given opens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

from protectflow.bank.objects import _keyfiles, _passwords
from protectflow.bank.objects._keystore import BankConfig, Unlocked
from protectflow.bank.objects._passwords import PasswordEntry, open_entries
from protectflow.bank.objects.crypto import Keyring
from protectflow.bank.objects.store import Bank
from protectflow.bank.rotation._state import KEYS, STATE
from protectflow.errors import BankError, BankLockedError

__all__ = ["discard_new_key", "find_new_key", "install_new_key", "installed_key_file",
           "new_password_for", "store_new_key"]

#: Asks for the new password when one is needed (a prompt, typed twice).
AskPassword = Callable[[], str]


def new_password_for(bank: Bank, unlocked: Unlocked, *, ask: AskPassword | None,
                     keep: bool) -> str | None:
    """The password the new key is to be wrapped by; None when the bank has
    no password entry (its key file alone opens it).

    Raises
    ------
    BankError
        If the bank has password entries and no new password is given (nor
        ``keep``), or ``keep`` is asked of a bank that opened with its key file.
    """
    entries = _passwords.password_entries(bank.backend)
    if not entries and unlocked.password is None:
        return None
    if keep:
        if unlocked.password is None:
            raise BankError(f"bank {bank.url} opened with its key file: there is no password "
                            "to keep; give the new password ($PROTECTFLOW_NEW_PASSWORD, or "
                            "type it on a terminal) without --keep-password")
        return unlocked.password
    if ask is None:
        raise BankError(
            f"bank {bank.url} opens with {len(entries)} password entr"
            f"{'y' if len(entries) == 1 else 'ies'}, which the rotation replaces by one for "
            "the new key: give its password in $PROTECTFLOW_NEW_PASSWORD (or type it on a "
            "terminal), or --keep-password to keep the one the bank opened with")
    password = ask()
    if not password:
        raise BankError("a bank's password cannot be empty")
    return password


def store_new_key(bank: Bank, config: BankConfig, master: bytes, *, key_file: bool,
                  password: str | None) -> tuple[str, ...]:
    """Keep the new key where the rotation's end installs it; the names of
    the new password entries.

    Raises
    ------
    BankError
        If the key cannot be written (the key folder refused, the bank).
    """
    if key_file:
        _keyfiles.write_key(config.id, master, bank.url, suffix=_keyfiles.NEXT, replace=True)
    if password is None:
        return ()
    entry = PasswordEntry.wrap(master, password, config.id)
    return (_passwords.write_entry(bank.backend, entry, area=KEYS),)


def discard_new_key(bank: Bank, config: BankConfig) -> None:
    """Remove what a rotation that died before sealing anything kept of its
    new key (it never protected a byte)."""
    _keyfiles.remove_key(config.id, _keyfiles.NEXT)
    for name in _passwords.password_entries(bank.backend, KEYS):
        bank.backend.delete(KEYS + name)


def _opens_state(master: bytes, state: bytes) -> bool:
    try:
        Keyring.from_master(master).open(STATE, state)
    except BankError:
        return False
    return True


def find_new_key(bank: Bank, config: BankConfig, state: bytes, *,
                 passwords: Callable[[], Iterable[str]]) -> bytes:
    """The rotation's new master key: the one that opens its ``state``.

    ``passwords()`` gives the passwords to try on the entries, asked only
    when no key file holds it.

    Raises
    ------
    BankLockedError
        If no key found opens the state.
    """
    for suffix in (_keyfiles.NEXT, _keyfiles.CURRENT):
        master = _keyfiles.read_key(config.id, suffix)
        if master is not None and _opens_state(master, state):
            return master
    backend = bank.backend
    areas = [(area, _passwords.password_entries(backend, area)) for area in (KEYS, "keys/")]
    if any(names for _, names in areas):
        for password in passwords():
            for area, names in areas:
                found = open_entries(_passwords.read_entries(backend, names, area=area),
                                     password, config.id, where=bank.url,
                                     accept=lambda m: _opens_state(m, state))
                if found is not None:
                    return found[0]
    raise BankLockedError(
        f"the bank {bank.url} is in the middle of a key rotation, and its new key is not "
        "at hand: no key file here holds it and no password given opens it. Run `protectflow "
        "key rotate` again where it was started, or with the new password the rotation "
        "was given ($PROTECTFLOW_NEW_PASSWORD or $PROTECTFLOW_PASSWORD)")


def install_new_key(bank: Bank, config: BankConfig, *, key_file: bool,
                    entries: tuple[str, ...]) -> int:
    """Make the new key the bank's: the next key file over the key file, the
    new entries into ``keys/``, every other entry removed; how many were.

    Raises
    ------
    BankError
        If the key file cannot be renamed or the bank refuses a write.
    """
    backend = bank.backend
    if key_file:
        _keyfiles.install_key(config.id)
    for name in entries:
        with contextlib.suppress(FileNotFoundError):  # moved by an earlier run
            raw = backend.read_limited(KEYS + name, 1 << 16)
            backend.write(_passwords.KEYS + name, (raw,))
            backend.delete(KEYS + name)
    removed = 0
    for name in _passwords.password_entries(backend):
        if name not in entries:
            backend.delete(_passwords.KEYS + name)
            removed += 1
    return removed


def installed_key_file(bank_id: str) -> str | None:
    """The path of the bank's key file here, if it has one.

    Raises
    ------
    BankLockedError
        If the key folder is refused.
    """
    return _keyfiles.key_file(bank_id) if _keyfiles.read_key(bank_id) is not None else None
