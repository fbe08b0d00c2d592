"""Where a bank's master key lives, and how it is unlocked.

A bank of format 2 holds, beside its sealed objects, two kinds of clear
objects that a reader needs before it has a key::

    config              {"format", "version", "id", "created_at", "mac"}
    keys/<KEY-ID>       the master key wrapped by a password: scrypt
                        derives a key from the password, AES-256-GCM wraps
                        the master key with the bank's id as associated data

(documents of their own, :class:`~._keydocs.BankConfig` and
:class:`~._keydocs.PasswordEntry`, read and checked in :mod:`._keydocs`).

The master key is never in the bank in clear. Where no password was given
when the bank was made, it lives in a key file in the user's config folder,
``<config dir>/protectflow/keys/<bank id>.key`` (folder 0700, file 0600), so a
bank made by the README's first command needs no extra step; ``protectflow key
add-password`` then wraps it into the bank too, ``export``/``import`` carry it
to another machine.

Unlocking tries, in order: the key file named after the bank's id; the
password from ``PROTECTFLOW_PASSWORD`` or the file ``PROTECTFLOW_PASSWORD_FILE``
names (``--password-file`` on the command line names one that comes first);
a prompt, if standard input is a terminal. The config's ``mac`` (a
keyed hash under the unlocked key) then proves that the config and the key
belong together.
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

from protectflow._paths import TEMP_PREFIX
from protectflow.bank.objects._backend import private_makedirs
from protectflow.bank.objects._keydocs import (
    BANK_VERSION,
    CONFIG,
    BankConfig,
    PasswordEntry,
    b64,
    unb64,
)
from protectflow.bank.objects.crypto import MASTER_KEY_LEN, Keyring
from protectflow.errors import BankError, BankLockedError, CorruptObjectError

__all__ = ["CONFIG", "KEYS", "BankConfig", "create_bank", "unlock"]

KEYS = "keys/"
PASSWORD_ENV = "PROTECTFLOW_PASSWORD"
PASSWORD_FILE_ENV = "PROTECTFLOW_PASSWORD_FILE"
_UNLOCKED: dict[tuple[str, bytes], Keyring] = {}  # one unlock per bank per process
_UNLOCK_LOCK = threading.Lock()


# -- the key file -------------------------------------------------------------------
def key_dir() -> str:
    """The folder of key files: ``<user config dir>/protectflow/keys``."""
    import platformdirs  # imported where used: `import protectflow` reads no config

    return os.path.join(platformdirs.user_config_dir("protectflow"), "keys")


def key_file(bank_id: str) -> str:
    """The key file of bank ``bank_id``."""
    return os.path.join(key_dir(), f"{bank_id}.key")


def write_key_file(bank_id: str, master: bytes, url: str) -> str:
    """Write the master key of bank ``bank_id`` into its key file, 0600.

    Raises
    ------
    BankError
        If the file exists or cannot be written.
    """
    path = key_file(bank_id)
    text = json.dumps({"bank": bank_id, "url": url, "master_key": b64(master)}, indent=1)
    try:
        private_makedirs(os.path.dirname(path))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise BankError(f"cannot write the key file {path}: {err}") from err
    return path


def read_key_file(path: str, bank_id: str | None = None) -> bytes | None:
    """The master key in the key file at ``path``, or None if there is none.

    Raises
    ------
    BankLockedError
        If the file cannot be read, is damaged or belongs to another bank.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise BankLockedError(f"cannot read the key file {path}: {err}",
                              BankLockedError.MISSING if isinstance(err, OSError)
                              else BankLockedError.WRONG) from err
    if not isinstance(data, dict) or (bank_id is not None and data.get("bank") != bank_id):
        raise BankLockedError(f"the key file {path} is not the key of bank {bank_id}",
                              BankLockedError.WRONG)
    try:
        master = unb64(data.get("master_key"), f"the key file {path}")
    except BankError as err:
        raise BankLockedError(str(err), BankLockedError.WRONG) from err
    if len(master) != MASTER_KEY_LEN:
        raise BankLockedError(f"the key file {path} is damaged: its key is not "
                              f"{MASTER_KEY_LEN} bytes", BankLockedError.WRONG)
    return master


# -- passwords ------------------------------------------------------------------------
def env_password(password_file: str | None = None) -> str | None:
    """The password in ``password_file`` (``--password-file``) when given,
    else ``$PROTECTFLOW_PASSWORD``, else in the file ``$PROTECTFLOW_PASSWORD_FILE`` names.

    Raises
    ------
    BankLockedError
        If the password file cannot be read.
    """
    if password_file is None:
        password = os.environ.get(PASSWORD_ENV)
        if password:
            return password
        password_file = os.environ.get(PASSWORD_FILE_ENV)
        if not password_file:
            return None
    try:
        with open(password_file, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as err:
        raise BankLockedError(f"cannot read the password file {password_file}: {err}"
                              ) from err


# -- unlocking and creating -----------------------------------------------------------
def read_config(backend: Any, url: str) -> BankConfig | None:
    """The bank's config, or None if it has none.

    Raises
    ------
    BankError
        If the config is damaged or of another format version.
    """
    try:
        raw = backend.read(CONFIG)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise BankError(f"cannot read the config of bank {url}: {err}") from err
    return BankConfig.from_json(raw, url)


def old_format_error(url: str) -> BankError:
    """The refusal of a bank written before format 2."""
    return BankError(
        f"the bank {url} has no config: it was written by a protectflow older than bank "
        f"format {BANK_VERSION}, which neither encrypted nor authenticated its objects, and "
        "this protectflow refuses to trust it. Restore what you need with the protectflow "
        "that wrote it, then protect again into a new bank (another --bank folder)")


def has_foreign_objects(backend: Any) -> bool:
    """Whether the bank's root holds anything but a config and keys."""
    return any(not name.startswith(TEMP_PREFIX) and name not in ("config", "keys", "-")
               for name, _ in backend.listdir(""))


def password_entries(backend: Any) -> dict[str, PasswordEntry | None]:
    """The bank's password entries by key id; None for one that is damaged
    (another entry may still unlock)."""
    out: dict[str, PasswordEntry | None] = {}
    for name, is_dir in backend.listdir(KEYS.rstrip("/")):
        if is_dir or name.startswith(TEMP_PREFIX):
            continue
        try:
            out[name] = PasswordEntry.from_json(json.loads(backend.read(KEYS + name)),
                                                CorruptObjectError)
        except ValueError:  # not JSON, or not an entry (CorruptObjectError too)
            out[name] = None
        except OSError:
            continue  # gone since the listing
    return out


def unlock(backend: Any, url: str, *, prompt: bool = True,
           password_file: str | None = None) -> tuple[BankConfig, Keyring] | None:
    """The bank's config and keyring; None if the bank has no config and no
    objects (a bank not made yet). ``password_file``: see :func:`env_password`.

    Raises
    ------
    BankError
        If the bank is of the old format.
    BankLockedError
        If its key is missing or the password wrong.
    CorruptObjectError
        If its config is damaged.
    """
    config = read_config(backend, url)
    if config is None:
        if has_foreign_objects(backend):
            raise old_format_error(url)
        return None
    with _UNLOCK_LOCK:
        cached = _UNLOCKED.get((url, config.raw))
        if cached is None:
            master, _ = find_master(backend, url, config, prompt=prompt,
                                    password_file=password_file)
            cached = check_master(config, master, url)
            _UNLOCKED[(url, config.raw)] = cached
    return config, cached


def find_master(backend: Any, url: str, config: BankConfig, *, prompt: bool = True,
                password_file: str | None = None) -> tuple[bytes, list[str]]:
    """The bank's master key, and the ids of the password entries the
    password opened (none when the key file held it).

    Raises
    ------
    BankLockedError
        If no key is found (``problem`` "missing") or the password is wrong
        ("wrong").
    """
    master = read_key_file(key_file(config.id), config.id)
    if master is not None:
        return master, []
    entries = password_entries(backend)
    if not entries:
        raise BankLockedError(
            f"no key for bank {url} (id {config.id}): its key file {key_file(config.id)} "
            "is missing and the bank holds no password-wrapped key; import the key you "
            "exported with `protectflow key import FILE`")
    password = env_password(password_file)
    if password is None and prompt and sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass(f"password of bank {url}: ")
    if password is None:
        raise BankLockedError(f"bank {url} is locked by a password: set ${PASSWORD_ENV}, "
                              "or give --password-file (or $" + PASSWORD_FILE_ENV + ") a "
                              "file holding it")
    opened = {name: entry.unwrap(password, config.id)
              for name, entry in entries.items() if entry is not None}
    found = [m for m in opened.values() if m is not None]
    if not found:
        raise BankLockedError(f"wrong password for bank {url}: no key of the bank opens "
                              "with it", BankLockedError.WRONG)
    return found[0], sorted(name for name, m in opened.items() if m is not None)


def check_master(config: BankConfig, master: bytes, url: str) -> Keyring:
    """The keyring of ``master``, checked against the bank's config.

    Raises
    ------
    BankLockedError
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
    BankError
        If the key cannot be stored.
    """
    master = os.urandom(MASTER_KEY_LEN)
    keyring = Keyring.from_master(master)
    bank_id = uuid.uuid4().hex
    config = BankConfig.new(bank_id, keyring)
    password = env_password(password_file)
    # The key first, then the config: a config never exists without its key.
    if password is not None:
        entry_key = KEYS + uuid.uuid4().hex[:16]
        entry = PasswordEntry.wrap(master, password, bank_id)
        backend.write(entry_key, (json.dumps(entry.to_json()).encode(),))
        undo: Any = lambda: backend.delete(entry_key)  # noqa: E731
    else:
        path = write_key_file(bank_id, master, url)
        undo = lambda: os.unlink(path)  # noqa: E731
    if not write_config(config.raw):  # lost a race with another process making the bank
        with contextlib.suppress(OSError):
            undo()
        found = unlock(backend, url, password_file=password_file)
        if found is None:
            raise BankError(f"cannot make the bank {url}: its config vanished")
        return found
    with _UNLOCK_LOCK:
        _UNLOCKED[(url, config.raw)] = keyring
    return config, keyring


def forget_unlocked() -> None:
    """Drop the process's unlocked keys (after a key change, and in tests)."""
    with _UNLOCK_LOCK:
        _UNLOCKED.clear()
