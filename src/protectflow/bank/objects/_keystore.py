"""Where a bank's master key lives, and how it is unlocked.

A bank of format 2 holds, beside its sealed objects, two kinds of clear
objects that a reader needs before it has a key::

    config              {"format", "version", "id", "created_at", "mac"}
    keys/<KEY-ID>       the master key wrapped by a password: scrypt
                        derives a key from the password, AES-256-GCM wraps
                        the master key with the bank's id as associated data

The master key is never in the bank in clear. Where no password was given
when the bank was made, it lives in a key file in the user's config folder,
``<config dir>/protectflow/keys/<bank id>.key`` (folder 0700, file 0600), so a
bank made by the README's first command needs no extra step; ``protectflow key
add-password`` then wraps it into the bank too, ``export``/``import`` carry it
to another machine.

Unlocking tries, in order: the key file named after the bank's id (see
:mod:`._keyfiles` for the checks its folder must pass); the password from
``PROTECTFLOW_PASSWORD`` or the file ``PROTECTFLOW_PASSWORD_FILE`` names
(``--password-file`` on the command line names one that comes first); a
prompt, if standard input is a terminal -- against the password entries, as
:mod:`._passwords` bounds them. The config's ``mac`` (a keyed hash under the
unlocked key) then proves that the config and the key belong together. A
bank in the middle of a key rotation (:mod:`._rotating`) is not unlocked.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import threading
import uuid
from typing import Any

import attrs

from protectflow._paths import TEMP_PREFIX
from protectflow._util import now_iso
from protectflow.bank.objects import _keyfiles
from protectflow.bank.objects._passwords import (
    KEYS,
    PASSWORD_ENV,
    PASSWORD_FILE_ENV,
    PasswordEntry,
    env_password,
    open_entries,
    password_entries,
    read_entries,
    write_entry,
)
from protectflow.bank.objects._rotating import refuse_if_rotating
from protectflow.bank.objects.crypto import MASTER_KEY_LEN, Keyring
from protectflow.errors import BankError, BankLockedError, CorruptObjectError

__all__ = ["CONFIG", "KEYS", "BankConfig", "create_bank", "unlock"]

CONFIG = "config"
BANK_FORMAT = "protectflow-bank"
BANK_VERSION = 2
_UNLOCKED: dict[tuple[str, bytes], Keyring] = {}  # one unlock per bank per process
_UNLOCK_LOCK = threading.Lock()
#: The most bytes of a config read (one holds about 200).
_MAX_CONFIG = 64 << 10


class BankConfig:
    """A bank's clear config: its format version and id."""

    def __init__(self, data: dict[str, Any], raw: bytes) -> None:
        self.data = data
        self.raw = raw
        self.id = str(data["id"])

    @classmethod
    def parse(cls, raw: bytes, url: str) -> BankConfig:
        """Read ``config``.

        Raises
        ------
        BankError
            If it is not a config of a format this protectflow reads.
        """
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("format") != BANK_FORMAT \
                or not isinstance(data.get("id"), str) or not data["id"].isalnum():
            raise CorruptObjectError(f"the bank {url} has a damaged config object; restore "
                                     "it from a copy of the bank", key=CONFIG)
        if data.get("version") != BANK_VERSION:
            raise BankError(f"the bank {url} has format version {data.get('version')!r}; "
                            f"this protectflow reads version {BANK_VERSION}: use the "
                            "protectflow that wrote it")
        return cls(data, raw)

    def check(self, keyring: Keyring, url: str) -> None:
        """Check the config's ``mac`` under ``keyring``.

        Raises
        ------
        BankLockedError
            If the key does not belong to this config.
        """
        if self.data.get("mac") != keyring.mac(_mac_text(self.data)):
            raise BankLockedError(
                f"the key found for bank {url} (fingerprint {keyring.fingerprint}) does not "
                "match its config: the key belongs to another bank, or is this bank's key "
                "from before a `protectflow key rotate` (import the new one), or the "
                "config was changed", BankLockedError.WRONG)


def _mac_text(data: dict[str, Any]) -> bytes:
    body = {k: v for k, v in data.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


# -- the key file ------------------------------------------------------------------
def key_file(bank_id: str) -> str:
    """The key file of bank ``bank_id``."""
    return _keyfiles.key_file(bank_id)


def read_key_file(path: str, bank_id: str | None = None) -> bytes | None:
    """The master key in the key file at ``path`` (an exported copy, read as
    a file the user named), or None if there is none.

    Raises
    ------
    BankError
        If the file is refused, damaged or another bank's.
    """
    if not os.path.lexists(path):
        return None
    return _keyfiles.exported_key(path, bank_id)


# -- unlocking and creating -----------------------------------------------------------
def read_config(backend: Any, url: str) -> BankConfig | None:
    """The bank's config, or None if it has none.

    Raises
    ------
    BankError
        If the config is damaged or of another format version.
    """
    try:
        raw = backend.read_limited(CONFIG, _MAX_CONFIG)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise BankError(f"cannot read the config of bank {url}: {err}") from err
    return BankConfig.parse(raw, url)


def old_format_error(url: str) -> BankError:
    """The refusal of a bank written before format 2."""
    return BankError(
        f"the bank {url} has no config: it was written by a protectflow older than bank "
        f"format {BANK_VERSION}, which neither encrypted nor authenticated its objects, and "
        "this protectflow refuses to trust it. Restore what you need with the protectflow "
        "that wrote it, then protect again into a new bank (another --bank folder)")


def has_foreign_objects(backend: Any) -> bool:
    """Whether the bank's root holds anything but a config and keys."""
    return any(not name.startswith(TEMP_PREFIX)
               and name not in ("config", "keys", "rotation", "rotating", "-")
               for name, _ in backend.listdir(""))


# -- password entries ---------------------------------------------------------------
def matches(config: BankConfig, master: bytes) -> bool:
    """Whether ``master`` is the key ``config`` was authenticated under."""
    return config.data.get("mac") == Keyring.from_master(master).mac(_mac_text(config.data))


# -- unlocking and creating -----------------------------------------------------------
@attrs.frozen
class Unlocked:
    """A bank's master key, and how it was found."""

    master: bytes = attrs.field(repr=False)
    #: The password entry that opened it; None when the key file held it.
    entry: str | None
    #: The password that opened it (None: the key file).
    password: str | None = attrs.field(repr=False)


def unlock(backend: Any, url: str, *, prompt: bool = True,
           password_file: str | None = None) -> tuple[BankConfig, Keyring] | None:
    """The bank's config and keyring; None if the bank has no config and no
    objects (a bank not made yet). ``password_file``: see :func:`env_password`.

    Raises
    ------
    BankLockedError
        If its key is missing or refused, the password wrong, or a key
        rotation has the bank.
    BankError
        If the bank is of the old format.
    """
    config = read_config(backend, url)
    if config is None:
        if not has_foreign_objects(backend):
            return None
        # Objects but no config: an old bank -- or a new one that another
        # process made between the two reads (its config comes before them).
        config = read_config(backend, url)
        if config is None:
            raise old_format_error(url)
    refuse_if_rotating(backend, url)
    with _UNLOCK_LOCK:
        cached = _UNLOCKED.get((url, config.raw))
        if cached is None:
            found = find_master(backend, url, config, prompt=prompt,
                                password_file=password_file)
            cached = check_master(config, found.master, url)
            _UNLOCKED[(url, config.raw)] = cached
    return config, cached


def current_password(url: str, *, prompt: bool = True,
                     password_file: str | None = None) -> str | None:
    """The password given for bank ``url``: the file, the environment, else
    a prompt on a terminal; None if none is.

    Raises
    ------
    BankLockedError
        If the password given is empty or its file cannot be read.
    """
    password = env_password(password_file)
    if password is None and prompt and sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass(f"password of bank {url}: ")
        if not password:
            raise BankLockedError("an empty password was typed: a bank's password cannot be "
                               "empty")
    return password


def find_master(backend: Any, url: str, config: BankConfig, *, prompt: bool = True,
                password_file: str | None = None) -> Unlocked:
    """The bank's master key: its key file's, else the first password entry
    the password opens (see :mod:`._passwords` for the bounds).

    Raises
    ------
    BankLockedError
        If no key is found or the password is wrong.
    """
    master = _keyfiles.read_key(config.id)
    if master is not None:
        return Unlocked(master, None, None)
    names = password_entries(backend)
    if not names:
        raise BankLockedError(
            f"no key for bank {url} (id {config.id}): its key file {key_file(config.id)} "
            "is missing and the bank holds no password-wrapped key; import the key you "
            "exported with `protectflow key import FILE`")
    password = current_password(url, prompt=prompt, password_file=password_file)
    if password is None:
        raise BankLockedError(f"bank {url} is locked by a password: set ${PASSWORD_ENV}, or "
                           "give --password-file (or $" + PASSWORD_FILE_ENV + ") a file "
                           "holding it")
    opened = open_entries(read_entries(backend, names), password, config.id, where=url,
                          accept=lambda m: matches(config, m))
    if opened is None:
        raise BankLockedError(f"wrong password for bank {url}: it opens none of the bank's "
                           f"password entries ({len(names)})", BankLockedError.WRONG)
    return Unlocked(opened[0], opened[1], password)


def entries_opening(backend: Any, config: BankConfig, password: str,
                    master: bytes) -> list[str]:
    """The password entries ``password`` opens to ``master`` (as bounded as
    unlocking), for a change of password that removes them."""
    found: list[str] = []
    names = password_entries(backend)
    while names:
        opened = open_entries(read_entries(backend, names), password, config.id,
                              where="", accept=lambda m: m == master)
        if opened is None:
            break
        found.append(opened[1])
        names = names[names.index(opened[1]) + 1:]
    return found


def check_master(config: BankConfig, master: bytes, url: str) -> Keyring:
    """The keyring of ``master``, checked against the bank's config.

    Raises
    ------
    BankError
        If the key does not belong to the bank.
    """
    keyring = Keyring.from_master(master)
    config.check(keyring, url)
    return keyring


def create_bank(backend: Any, url: str, write_config: Any, *,
                password_file: str | None = None) -> tuple[BankConfig, Keyring]:
    """Make a new bank's master key, its key (wrapped or in a key file), then
    its config; if another process made the config first, unlock theirs.

    ``write_config(raw)`` creates the config object if absent (returns whether
    it did): the caller's atomic create.

    Raises
    ------
    BankLockedError
        If the password given is empty, or the key folder is refused.
    BankError
        If the key cannot be stored.
    """
    master = os.urandom(MASTER_KEY_LEN)
    keyring = Keyring.from_master(master)
    bank_id = uuid.uuid4().hex
    data: dict[str, Any] = {"format": BANK_FORMAT, "version": BANK_VERSION, "id": bank_id,
                            "created_at": now_iso()}
    data["mac"] = keyring.mac(_mac_text(data))
    raw = json.dumps(data, sort_keys=True, indent=1).encode("utf-8")
    password = env_password(password_file)
    # The key first, then the config: a config never exists without its key.
    if password is not None:
        entry_key = KEYS + write_entry(backend, PasswordEntry.wrap(master, password, bank_id))
        undo: Any = lambda: backend.delete(entry_key)  # noqa: E731
    else:
        _keyfiles.write_key(bank_id, master, url)
        undo = lambda: _keyfiles.remove_key(bank_id, _keyfiles.CURRENT)  # noqa: E731
    # Lost a race with another process making the bank: its config is there.
    # Read back as well -- a store that ignores a conditional put lets the
    # last writer win, and then that writer's config, not ours, is the bank's.
    if not write_config(raw) or _config_bytes(backend) != raw:
        with contextlib.suppress(OSError, BankError):
            undo()
        found = unlock(backend, url, password_file=password_file)
        if found is None:
            raise BankError(f"cannot make the bank {url}: its config vanished")
        return found
    config = BankConfig(data, raw)
    remember(url, config, keyring)
    return config, keyring


def _config_bytes(backend: Any) -> bytes | None:
    """The config as it is stored now (None if it cannot be read)."""
    try:
        raw: bytes = backend.read_limited(CONFIG, _MAX_CONFIG)
    except OSError:
        return None
    return raw


def remember(url: str, config: BankConfig, keyring: Keyring) -> None:
    """Keep ``keyring`` as the unlocked key of the bank with ``config``."""
    with _UNLOCK_LOCK:
        _UNLOCKED[(url, config.raw)] = keyring


def rekey_config(backend: Any, url: str, config: BankConfig, keyring: Keyring) -> BankConfig:
    """Authenticate the bank's config under ``keyring`` (a key rotation's new
    key) and write it; the bank's id and the rest stay.

    Raises
    ------
    BankError
        If the store refuses the write.
    """
    data = {k: v for k, v in config.data.items() if k != "mac"}
    data["mac"] = keyring.mac(_mac_text(data))
    raw = json.dumps(data, sort_keys=True, indent=1).encode("utf-8")
    try:
        backend.write(CONFIG, (raw,))
    except OSError as err:
        raise BankError(f"cannot write the config of bank {url}: {err}") from err
    return BankConfig(data, raw)


def forget_unlocked() -> None:
    """Drop the process's unlocked keys (after a key change, and in tests)."""
    with _UNLOCK_LOCK:
        _UNLOCKED.clear()
