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

Unlocking tries, in order: the key file named after the bank's id; the
password from ``PROTECTFLOW_PASSWORD`` or the file ``PROTECTFLOW_PASSWORD_FILE``
names (``--password-file`` on the command line names one that comes first);
a prompt, if standard input is a terminal. The config's ``mac`` (a
keyed hash under the unlocked key) then proves that the config and the key
belong together.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import json
import os
import sys
import threading
import uuid
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from protectflow._paths import TEMP_PREFIX
from protectflow._util import now_iso
from protectflow.bank.objects._backend import private_makedirs
from protectflow.bank.objects.crypto import MASTER_KEY_LEN, Keyring
from protectflow.errors import BankError, BankLockedError, CorruptObjectError

__all__ = ["CONFIG", "KEYS", "BankConfig", "create_bank", "unlock"]

CONFIG = "config"
KEYS = "keys/"
BANK_FORMAT = "protectflow-bank"
BANK_VERSION = 2
#: scrypt's cost: 2^15 x 8 x 128 bytes = 32 MiB of memory, ~0.1 s per try.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
PASSWORD_ENV = "PROTECTFLOW_PASSWORD"
PASSWORD_FILE_ENV = "PROTECTFLOW_PASSWORD_FILE"
_UNLOCKED: dict[tuple[str, bytes], Keyring] = {}  # one unlock per bank per process
_UNLOCK_LOCK = threading.Lock()


def b64(data: bytes) -> str:
    """``data`` in base64."""
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError as err:
        raise BankError(f"{what} is damaged: {err}") from err


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
            raise BankLockedError(f"the key found for bank {url} (fingerprint "
                                  f"{keyring.fingerprint}) does not match its config: the "
                                  "config was changed, or the key belongs to another bank",
                                  BankLockedError.WRONG)


def _mac_text(data: dict[str, Any]) -> bytes:
    body = {k: v for k, v in data.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


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
        master = _unb64(data.get("master_key"), f"the key file {path}")
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


def _kek(password: str, salt: bytes, params: dict[str, Any]) -> bytes:
    n, r, p = int(params.get("n", 0)), int(params.get("r", 0)), int(params.get("p", 0))
    if not (1 << 14 <= n <= 1 << 20 and 1 <= r <= 32 and 1 <= p <= 16):
        # Checked before deriving: a tampered entry could ask for terabytes.
        raise CorruptObjectError(f"a password entry asks for scrypt n={n}, r={r}, p={p}: "
                                 "refused")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))


def wrap(master: bytes, password: str, bank_id: str) -> dict[str, Any]:
    """A password entry (``keys/<id>``) wrapping ``master``."""
    salt, nonce = os.urandom(16), os.urandom(12)
    params = {"n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}
    wrapped = AESGCM(_kek(password, salt, params)).encrypt(nonce, master, bank_id.encode())
    return {"kdf": "scrypt", **params, "salt": b64(salt), "nonce": b64(nonce),
            "wrapped": b64(wrapped), "created_at": now_iso()}


def unwrap(entry: object, password: str, bank_id: str) -> bytes | None:
    """The master key in a password entry, or None if the password is wrong."""
    if not isinstance(entry, dict) or entry.get("kdf") != "scrypt":
        return None
    kek = _kek(password, _unb64(entry.get("salt"), "a password entry"), entry)
    try:
        master = AESGCM(kek).decrypt(_unb64(entry.get("nonce"), "a password entry"),
                                     _unb64(entry.get("wrapped"), "a password entry"),
                                     bank_id.encode())
    except InvalidTag:
        return None
    return master if len(master) == MASTER_KEY_LEN else None


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
    return any(not name.startswith(TEMP_PREFIX) and name not in ("config", "keys", "-")
               for name, _ in backend.listdir(""))


def password_entries(backend: Any) -> dict[str, object]:
    """The bank's password entries by key id."""
    out: dict[str, object] = {}
    for name, is_dir in backend.listdir(KEYS.rstrip("/")):
        if is_dir or name.startswith(TEMP_PREFIX):
            continue
        try:
            out[name] = json.loads(backend.read(KEYS + name))
        except (OSError, ValueError):
            continue  # damaged: another entry may still unlock
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
    opened = {name: unwrap(entry, password, config.id) for name, entry in entries.items()}
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
    data: dict[str, Any] = {"format": BANK_FORMAT, "version": BANK_VERSION, "id": bank_id,
                            "created_at": now_iso()}
    data["mac"] = keyring.mac(_mac_text(data))
    raw = json.dumps(data, sort_keys=True, indent=1).encode("utf-8")
    password = env_password(password_file)
    # The key first, then the config: a config never exists without its key.
    if password is not None:
        entry_key = KEYS + uuid.uuid4().hex[:16]
        backend.write(entry_key, (json.dumps(wrap(master, password, bank_id)).encode(),))
        undo: Any = lambda: backend.delete(entry_key)  # noqa: E731
    else:
        path = write_key_file(bank_id, master, url)
        undo = lambda: os.unlink(path)  # noqa: E731
    if not write_config(raw):  # lost a race with another process making the bank
        with contextlib.suppress(OSError):
            undo()
        found = unlock(backend, url, password_file=password_file)
        if found is None:
            raise BankError(f"cannot make the bank {url}: its config vanished")
        return found
    config = BankConfig(data, raw)
    with _UNLOCK_LOCK:
        _UNLOCKED[(url, raw)] = keyring
    return config, keyring


def forget_unlocked() -> None:
    """Drop the process's unlocked keys (after a key change, and in tests)."""
    with _UNLOCK_LOCK:
        _UNLOCKED.clear()
