"""Passwords and the password entries that wrap a bank's master key.

A password entry (``keys/<id>`` in the bank, clear JSON) wraps the master
key: scrypt derives a key from the password and the entry's salt, and
AES-256-GCM wraps the master key under it with the bank's id as associated
data. Anyone who can write the bank can add entries, so reading them is
bounded (see :func:`open_entries`):

- an entry is read only if it is exactly what protectflow writes: scrypt
  with ``n=2**15, r=8, p=1`` (32 MiB, about 0.1 s), a 16-byte salt, a 12-byte
  nonce, a 48-byte wrapped key, at most :data:`MAX_ENTRY_BYTES` of JSON. A
  higher cost, or any other shape, is skipped before any work, with a
  warning naming the entry; it never hides or blocks a good one;
- entries are tried in the order of their names, and the first that opens
  ends the search;
- at most :data:`MAX_ENTRIES` entries are read and scrypt runs for at most
  :data:`MAX_TRIED` of them, so unlocking costs at most 32 x 32 MiB-and-0.1 s,
  one after the other, whatever the bank holds. (Whoever can write the bank
  can always keep it from being unlocked -- by deleting its entries --; what
  they cannot do is make unlocking expensive.)

Password text, from ``$PROTECTFLOW_PASSWORD`` or a file: exactly one
trailing ``"\\n"`` or ``"\\r\\n"`` is dropped (as restic does for its
password file), so the same text gives the same password either way; an
empty password is refused, never taken as the empty password.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from protectflow import _localfiles
from protectflow._paths import TEMP_PREFIX
from protectflow._util import now_iso
from protectflow.bank.objects.crypto import MASTER_KEY_LEN
from protectflow.errors import BankError, BankLockedError, ProtectflowWarning

__all__ = ["KEYS", "MAX_ENTRIES", "MAX_TRIED", "PasswordEntry", "env_password",
           "open_entries", "password_entries", "password_text", "read_entries", "write_entry"]

#: Where a bank keeps its password entries.
KEYS = "keys/"
PASSWORD_ENV = "PROTECTFLOW_PASSWORD"
PASSWORD_FILE_ENV = "PROTECTFLOW_PASSWORD_FILE"
#: scrypt's cost: 2^15 x 8 x 128 bytes = 32 MiB of memory, ~0.1 s per try.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
SALT_LEN, NONCE_LEN, WRAPPED_LEN = 16, 12, MASTER_KEY_LEN + 16
#: The most bytes of one entry read; what protectflow writes is about 200.
MAX_ENTRY_BYTES = 1024
#: The most entries read, and the most scrypt runs, per unlock.
MAX_ENTRIES, MAX_TRIED = 64, 32
#: The largest password file read.
MAX_PASSWORD_BYTES = 4096
_FIELDS = frozenset({"kdf", "n", "r", "p", "salt", "nonce", "wrapped", "created_at"})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class MalformedEntry(ValueError):
    """A password entry that is not what protectflow writes; says why."""


@attrs.frozen
class PasswordEntry:
    """A master key wrapped by a password (``keys/<id>``)."""

    salt: bytes
    nonce: bytes
    wrapped: bytes
    created_at: str

    @classmethod
    def wrap(cls, master: bytes, password: str, bank_id: str) -> PasswordEntry:
        """A new entry wrapping ``master`` under ``password``."""
        salt, nonce = os.urandom(SALT_LEN), os.urandom(NONCE_LEN)
        wrapped = AESGCM(derive_kek(password, salt)).encrypt(nonce, master, bank_id.encode())
        return cls(salt, nonce, wrapped, now_iso())

    def to_json(self) -> dict[str, Any]:
        return {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                "salt": _b64(self.salt), "nonce": _b64(self.nonce),
                "wrapped": _b64(self.wrapped), "created_at": self.created_at}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json()).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> PasswordEntry:
        """The entry stored as ``raw``, checked before any work is done.

        Raises
        ------
        MalformedEntry
            Saying what is wrong: its size, its JSON, a field, or a scrypt
            cost other than protectflow's.
        """
        if len(raw) > MAX_ENTRY_BYTES:
            raise MalformedEntry(f"it holds {len(raw)} bytes, more than an entry's "
                                 f"{MAX_ENTRY_BYTES}")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise MalformedEntry(f"it is not JSON ({err})") from None
        if not isinstance(data, dict) or set(data) != _FIELDS:
            raise MalformedEntry(f"its fields are not {', '.join(sorted(_FIELDS))}")
        if data["kdf"] != "scrypt":
            raise MalformedEntry(f"its kdf is {data['kdf']!r}, not 'scrypt'")
        cost = (data["n"], data["r"], data["p"])
        if cost != (SCRYPT_N, SCRYPT_R, SCRYPT_P) or any(type(c) is not int for c in cost):
            raise MalformedEntry(f"it asks for scrypt n={data['n']!r}, r={data['r']!r}, "
                                 f"p={data['p']!r}; protectflow writes and reads only "
                                 f"n={SCRYPT_N}, r={SCRYPT_R}, p={SCRYPT_P}")
        if not isinstance(data["created_at"], str) or len(data["created_at"]) > 64:
            raise MalformedEntry("its created_at is not a time")
        return cls(_field(data, "salt", SALT_LEN), _field(data, "nonce", NONCE_LEN),
                   _field(data, "wrapped", WRAPPED_LEN), data["created_at"])

    def unwrap(self, kek: bytes, bank_id: str) -> bytes | None:
        """The master key, or None if ``kek`` (the password's) does not open it."""
        try:
            return AESGCM(kek).decrypt(self.nonce, self.wrapped, bank_id.encode())
        except InvalidTag:
            return None


def _field(data: dict[str, Any], name: str, size: int) -> bytes:
    value = data[name]
    try:
        decoded = base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except (ValueError, binascii.Error):
        decoded = None
    if decoded is None or len(decoded) != size:
        raise MalformedEntry(f"its {name} is not {size} bytes in base64")
    return decoded


def derive_kek(password: str, salt: bytes) -> bytes:
    """The key a password entry is wrapped under: scrypt at protectflow's cost."""
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(
        password.encode("utf-8"))


def open_entries(entries: Iterable[tuple[str, bytes]], password: str, bank_id: str, *,
                 where: str, accept: Callable[[bytes], bool] = lambda _: True,
                 ) -> tuple[bytes, str] | None:
    """The first master key ``password`` opens, and its entry's name.

    ``entries`` are ``(name, raw bytes)`` in the order to try them (the
    caller's: by name), read lazily: at most :data:`MAX_ENTRIES` are read
    and :data:`MAX_TRIED` tried. A malformed entry is a warning naming it
    (``where`` names the bank); an entry that opens but holds a key
    ``accept`` refuses (another bank's, an unfinished rotation's) is a
    warning too, and the search goes on.

    Raises
    ------
    BankLockedError
        If no entry opens and some were left untried (the cap was reached).
    """
    keks: dict[bytes, bytes] = {}  # planted copies of a salt cost nothing more
    tried = read = 0
    for name, raw in entries:
        if read == MAX_ENTRIES or tried == MAX_TRIED:
            raise BankLockedError(
                f"wrong password for bank {where}, as far as protectflow looked: it tries "
                f"at most {MAX_TRIED} of a bank's password entries (and reads at most "
                f"{MAX_ENTRIES}), and the bank holds more; `protectflow key show` lists "
                "them: remove those you did not make", BankLockedError.WRONG)
        read += 1
        try:
            entry = PasswordEntry.from_bytes(raw)
        except MalformedEntry as err:
            _warn(f"the password entry keys/{_shown(name)} of bank {where} is unusable: "
                  f"{err}; it was skipped (remove it if you did not make it)")
            continue
        kek = keks.get(entry.salt)
        if kek is None:
            tried += 1
            kek = keks[entry.salt] = derive_kek(password, entry.salt)
        master = entry.unwrap(kek, bank_id)
        if master is None:
            continue
        if len(master) == MASTER_KEY_LEN and accept(master):
            return master, name
        _warn(f"the password entry keys/{_shown(name)} of bank {where} opens with this "
              "password but holds a key that does not open the bank; it was skipped")
    return None


def _shown(name: str) -> str:
    """An entry's name as a message shows it: whoever wrote the bank chose
    it, so no control character (a terminal's escape sequences)."""
    return "".join(c if c.isprintable() else "?" for c in name[:100])


def _warn(message: str) -> None:
    warnings.warn(message, ProtectflowWarning, stacklevel=3)


# -- entries in the bank -------------------------------------------------------------
def password_entries(backend: Any, area: str = KEYS) -> list[str]:
    """The names of the bank's password entries (under ``area``), in the
    order they are tried."""
    return sorted(name for name, is_dir in backend.listdir(area.rstrip("/"))
                  if not is_dir and not name.startswith(TEMP_PREFIX))


def read_entries(backend: Any, names: list[str], *,
                 area: str = KEYS) -> Iterator[tuple[str, bytes]]:
    """``(name, raw bytes)`` of each entry in ``names`` (under ``area``) that
    is still there, read lazily, each at most one byte past what an entry
    may hold."""
    for name in names:
        try:
            yield name, backend.read_limited(area + name, MAX_ENTRY_BYTES + 1)
        except OSError:
            continue  # removed since the listing, or unreadable: the next may open


def write_entry(backend: Any, entry: PasswordEntry, *, area: str = KEYS) -> str:
    """Store ``entry`` under a new name in ``area``; returns the name.

    Raises
    ------
    BankError
        If the bank refuses the write.
    """
    name = uuid.uuid4().hex[:16]
    try:
        backend.write(area + name, (entry.to_bytes(),))
    except OSError as err:
        raise BankError(f"cannot write a password entry into the bank: {err}") from err
    return name


# -- password text ---------------------------------------------------------------------
def password_text(raw: bytes | str, source: str) -> str:
    """The password ``raw`` holds: one trailing ``\\n`` or ``\\r\\n`` dropped.

    Raises
    ------
    BankLockedError
        If it is not UTF-8 text, or empty.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BankLockedError(f"{source} is not UTF-8 text: a password is text") from None
    text = raw[:-2] if raw.endswith("\r\n") else raw[:-1] if raw.endswith("\n") else raw
    if not text:
        raise BankLockedError(f"{source} is empty, and a bank's password cannot be empty: put "
                           "the password in it (one trailing newline is dropped)")
    return text


def read_password_file(path: str) -> str:
    """The password in the file at ``path``: a regular file of at most
    :data:`MAX_PASSWORD_BYTES` (a FIFO or a device is refused).

    Raises
    ------
    BankLockedError
        If it cannot be read, is not a regular file, is too large or empty.
    """
    try:
        raw = _localfiles.read_regular_file(path, limit=MAX_PASSWORD_BYTES,
                                            what="the password file")
    except _localfiles.Refused as err:
        raise BankLockedError(str(err)) from None
    return password_text(raw, f"the password file {path}")


def env_password(password_file: str | None = None) -> str | None:
    """The password in ``password_file`` (``--password-file``) when given,
    else ``$PROTECTFLOW_PASSWORD`` (when set, even empty), else in the file
    ``$PROTECTFLOW_PASSWORD_FILE`` names; None if none is given.

    Raises
    ------
    BankLockedError
        If the password given is empty, or its file cannot be read.
    """
    if password_file is None:
        if PASSWORD_ENV in os.environ:
            return password_text(os.environ[PASSWORD_ENV], f"${PASSWORD_ENV}")
        password_file = os.environ.get(PASSWORD_FILE_ENV)
        if not password_file:
            return None
    return read_password_file(password_file)
