"""The two clear documents a bank keeps beside its sealed objects, read before
there is a key to authenticate anything with (see :mod:`._keystore`)::

    config              BankConfig: {"format", "version", "id", "created_at", "mac"}
    keys/<KEY-ID>       PasswordEntry: the master key wrapped by a password

Both are untrusted until a key checks them: the config's ``mac`` is checked
under the key it unlocks with (:meth:`BankConfig.check`), a password entry's
scrypt cost is bounded before anything is derived from it (a tampered entry
could ask for terabytes), and its wrapping authenticates the bank's id.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, TypeGuard

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from protectflow._fields import Fail, Fields
from protectflow._util import now_iso
from protectflow.bank.objects.crypto import MASTER_KEY_LEN, Keyring
from protectflow.errors import BankError, BankLockedError, CorruptObjectError

__all__ = ["BANK_FORMAT", "BANK_VERSION", "CONFIG", "BankConfig", "PasswordEntry", "b64",
           "unb64"]

CONFIG = "config"
BANK_FORMAT = "protectflow-bank"
BANK_VERSION = 2
#: scrypt's cost: 2^15 x 8 x 128 bytes = 32 MiB of memory, ~0.1 s per try.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1


def b64(data: bytes) -> str:
    """``data`` in base64."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str) -> bytes:
    """The bytes ``text`` holds in base64.

    Raises
    ------
    BankError
        Naming ``what``, if ``text`` is not base64.
    """
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError as err:
        raise BankError(f"{what} is damaged: {err}") from err


def _mac_text(data: dict[str, Any]) -> bytes:
    """What a config's ``mac`` covers: every field but the mac, canonically."""
    body = {k: v for k, v in data.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


@attrs.frozen
class BankConfig:
    """A bank's clear config: its id, format version and the ``mac`` that ties
    it to its key; ``raw`` is the object's bytes as stored."""

    id: str
    mac: str | None
    raw: bytes = attrs.field(repr=False)
    #: What the mac covers (every field the config holds but the mac).
    mac_text: bytes = attrs.field(repr=False)

    @classmethod
    def new(cls, bank_id: str, keyring: Keyring) -> BankConfig:
        """The config of a new bank ``bank_id`` whose key is ``keyring``'s."""
        data: dict[str, Any] = {"format": BANK_FORMAT, "version": BANK_VERSION, "id": bank_id,
                                "created_at": now_iso()}
        data["mac"] = keyring.mac(_mac_text(data))
        return cls.from_json(json.dumps(data, sort_keys=True, indent=1).encode("utf-8"), "")

    @classmethod
    def from_json(cls, raw: bytes, url: str) -> BankConfig:
        """Read the ``config`` object of the bank at ``url`` from its bytes.

        Raises
        ------
        CorruptObjectError
            If it is not a config.
        BankError
            If it is of a format version this protectflow does not read.
        """
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("format") != BANK_FORMAT \
                or not isinstance(data.get("id"), str) or not data["id"].isalnum() \
                or not isinstance(data.get("mac"), (str, type(None))):
            raise CorruptObjectError(f"the bank {url} has a damaged config object; restore "
                                     "it from a copy of the bank", key=CONFIG)
        if data.get("version") != BANK_VERSION:
            raise BankError(f"the bank {url} has format version {data.get('version')!r}; "
                            f"this protectflow reads version {BANK_VERSION}: use the "
                            "protectflow that wrote it")
        return cls(data["id"], data.get("mac"), raw, _mac_text(data))

    def check(self, keyring: Keyring, url: str) -> None:
        """Check the config's ``mac`` under ``keyring``.

        Raises
        ------
        BankLockedError
            If the key does not belong to this config.
        """
        if self.mac != keyring.mac(self.mac_text):
            raise BankLockedError(f"the key found for bank {url} (fingerprint "
                                  f"{keyring.fingerprint}) does not match its config: the "
                                  "config was changed, or the key belongs to another bank",
                                  BankLockedError.WRONG)


def _kek(password: str, salt: bytes, n: object, r: object, p: object) -> bytes:
    # Checked before deriving: a tampered entry could ask for terabytes, and
    # what is not a whole power of two (a bool, a float, 1e400) is nothing
    # protectflow wrote -- never converted, so nothing reaches scrypt unchecked.
    if not (_whole(n) and _whole(r) and _whole(p) and n & (n - 1) == 0
            and 1 << 14 <= n <= 1 << 20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise CorruptObjectError(f"a password entry asks for scrypt n={n!r}, r={r!r}, p={p!r}: "
                                 f"refused (protectflow writes n={SCRYPT_N}, r={SCRYPT_R}, "
                                 f"p={SCRYPT_P}): the entry was changed; restore the bank's "
                                 "keys/ from a copy")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@attrs.frozen
class PasswordEntry:
    """A bank's master key wrapped by a password (``keys/<KEY-ID>``): scrypt
    (cost ``n``, ``r``, ``p``, ``salt``) derives a key from the password, and
    AES-256-GCM wraps the master key with it, the bank's id as associated data."""

    salt: bytes
    nonce: bytes
    wrapped: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P
    created_at: str = attrs.field(factory=now_iso)

    @classmethod
    def wrap(cls, master: bytes, password: str, bank_id: str) -> PasswordEntry:
        """The entry wrapping ``master`` of bank ``bank_id`` by ``password``."""
        salt, nonce = os.urandom(16), os.urandom(12)
        kek = _kek(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return cls(salt, nonce, AESGCM(kek).encrypt(nonce, master, bank_id.encode()))

    def unwrap(self, password: str, bank_id: str) -> bytes | None:
        """The master key of bank ``bank_id``, or None if ``password`` is wrong.

        Raises
        ------
        CorruptObjectError
            If the entry asks for an scrypt cost out of bounds.
        """
        kek = _kek(password, self.salt, self.n, self.r, self.p)
        try:
            master = AESGCM(kek).decrypt(self.nonce, self.wrapped, bank_id.encode())
        except InvalidTag:
            return None
        return master if len(master) == MASTER_KEY_LEN else None

    def to_json(self) -> dict[str, Any]:
        return {"kdf": "scrypt", "n": self.n, "r": self.r, "p": self.p, "salt": b64(self.salt),
                "nonce": b64(self.nonce), "wrapped": b64(self.wrapped),
                "created_at": self.created_at}

    @classmethod
    def from_json(cls, data: object, fail: Fail) -> PasswordEntry:
        """The entry :meth:`to_json` wrote.

        Raises
        ------
        Exception
            What ``fail`` makes, naming the field that is missing, of the
            wrong type, or not base64; or if it is not an scrypt entry.
        """
        fields = Fields(data, "password entry", fail)
        if fields.data.get("kdf") != "scrypt":
            raise fail(f"its kdf is {fields.data.get('kdf')!r}, not 'scrypt'")

        def raw(name: str) -> bytes:
            try:
                return unb64(fields.get(name, str), repr(name))
            except BankError as err:
                raise fail(str(err)) from err

        return cls(raw("salt"), raw("nonce"), raw("wrapped"), fields.get("n", int),
                   fields.get("r", int), fields.get("p", int),
                   fields.default("created_at", str, ""))
