"""Key files: a bank's master key in the user's config folder, and the
exported copies ``protectflow key export`` writes.

The key folder is ``<user config dir>/protectflow/keys`` (``$XDG_CONFIG_HOME``
or ``~/.config`` on Linux). Whoever can change it can delete a bank's key
(every checkpoint unreadable) or plant another, so it is trusted only as
:mod:`protectflow._localfiles` checks it: the ``keys`` folder and the
``protectflow`` folder above it must be this user's, not symlinks, and
writable by nobody else (made ``0700`` when missing), every folder above
them this user's or root's. A folder that breaks a rule is refused, for
reading and writing alike, with an error naming it, what is wrong and the
fix.

Key files are made in that folder, relative to its descriptor: written
``0600`` under a temporary name (``O_CREAT | O_EXCL | O_NOFOLLOW``) and
renamed into place -- linked, when an existing key must not be replaced.
They are read without following a symlink, and refused unless a regular
file of this user's that nobody else may read or write. ``<bank id>.key``
holds the bank's key; ``<bank id>.next.key`` a key rotation's new key until
it replaces the first.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import uuid
from collections.abc import Iterator

from protectflow import _localfiles
from protectflow.bank.objects.crypto import MASTER_KEY_LEN
from protectflow.errors import BankError, BankLockedError

__all__ = ["exported_key", "install_key", "key_dir", "key_file", "read_key",
           "remove_key", "write_export", "write_key"]

#: The largest key file read (one holds about 150 bytes).
MAX_KEY_FILE = 64 << 10
_WHAT = "the keys folder"
_FIX = ("remove it (as its owner) and run again: protectflow makes it, 0700; or set "
        "XDG_CONFIG_HOME to a folder of your own")
CURRENT, NEXT = ".key", ".next.key"


def key_dir() -> str:
    """The folder of key files: ``<user config dir>/protectflow/keys``."""
    import platformdirs  # imported where used: `import protectflow` reads no config

    return os.path.join(platformdirs.user_config_dir("protectflow"), "keys")


def key_file(bank_id: str, suffix: str = CURRENT) -> str:
    """The key file of bank ``bank_id`` (its next key's, with ``NEXT``)."""
    return os.path.join(key_dir(), bank_id + suffix)


@contextlib.contextmanager
def _folder(*, create: bool) -> Iterator[int | None]:
    """A descriptor of the checked key folder; None if it is not there and
    not ``create``.

    Raises
    ------
    BankLockedError
        If the folder, or the config folder above it, is refused.
    """
    try:
        fd = _localfiles.open_private_dir(key_dir(), own=2, what=_WHAT, fix=_FIX,
                                          create=create)
    except FileNotFoundError:
        yield None
        return
    except _localfiles.Refused as err:
        raise BankLockedError(f"{err} (no key is read from or written to it)") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _key_text(bank_id: str, master: bytes, url: str) -> bytes:
    text = json.dumps({"bank": bank_id, "url": url,
                       "master_key": base64.b64encode(master).decode("ascii")}, indent=1)
    return (text + "\n").encode("utf-8")


def parse_key(raw: bytes, path: str, bank_id: str | None) -> bytes:
    """The master key in a key file's bytes.

    Raises
    ------
    BankLockedError
        If they are not a key file, or one of another bank (``problem`` "wrong").
    """
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise BankLockedError(f"the key file {path} is damaged: it is not a protectflow "
                              "key file", BankLockedError.WRONG)
    if bank_id is not None and data.get("bank") != bank_id:
        raise BankLockedError(f"the key file {path} is not the key of bank {bank_id}",
                              BankLockedError.WRONG)
    try:
        master = base64.b64decode(str(data.get("master_key")), validate=True)
    except (ValueError, binascii.Error):
        master = b""
    if len(master) != MASTER_KEY_LEN:
        raise BankLockedError(f"the key file {path} is damaged: its key is not "
                              f"{MASTER_KEY_LEN} bytes in base64", BankLockedError.WRONG)
    return master


def read_key(bank_id: str, suffix: str = CURRENT) -> bytes | None:
    """The master key in the key file of ``bank_id``, or None if there is none.

    Raises
    ------
    BankLockedError
        If the key folder or the file is refused.
    BankError
        If the file is damaged or another bank's.
    """
    path = key_file(bank_id, suffix)
    with _folder(create=False) as fd:
        if fd is None:
            return None
        try:
            raw = _localfiles.read_private_file(fd, bank_id + suffix, path=path,
                                                limit=MAX_KEY_FILE)
        except _localfiles.Refused as err:
            raise BankLockedError(str(err)) from None
    return None if raw is None else parse_key(raw, path, bank_id)


def write_key(bank_id: str, master: bytes, url: str, *, suffix: str = CURRENT,
              replace: bool = False) -> str:
    """Write the key file of ``bank_id`` (its path); without ``replace`` an
    existing one is an error.

    Raises
    ------
    BankLockedError
        If the key folder is refused.
    BankError
        If the file exists (without ``replace``) or cannot be written.
    """
    path = key_file(bank_id, suffix)
    with _folder(create=True) as fd:
        assert fd is not None  # made when missing
        try:
            _localfiles.write_private_file(fd, bank_id + suffix, _key_text(bank_id, master, url),
                                           replace=replace, temp=f".tmp-{uuid.uuid4().hex}")
        except OSError as err:
            raise BankError(f"cannot write the key file {path}: {err}") from err
    return path


def install_key(bank_id: str) -> bool:
    """Rename the next key file of ``bank_id`` over its key file: whether
    there was one to rename.

    Raises
    ------
    BankLockedError
        If the key folder is refused.
    BankError
        If the rename fails.
    """
    with _folder(create=True) as fd:
        assert fd is not None  # made when missing
        try:
            os.rename(bank_id + NEXT, bank_id + CURRENT, src_dir_fd=fd, dst_dir_fd=fd)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise BankError(f"cannot install the new key file {key_file(bank_id)}: "
                            f"{err}") from err
        with contextlib.suppress(OSError):
            os.fsync(fd)
    return True


def remove_key(bank_id: str, suffix: str) -> None:
    """Remove a key file of ``bank_id`` if it is there.

    Raises
    ------
    BankLockedError
        If the key folder is refused.
    """
    with _folder(create=False) as fd:
        if fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(bank_id + suffix, dir_fd=fd)


# -- exported copies --------------------------------------------------------------
def write_export(path: str, bank_id: str, master: bytes, url: str) -> None:
    """Write an exported copy of a key to the new file ``path`` (0600).

    Raises
    ------
    BankError
        If ``path`` exists or cannot be written.
    """
    folder, name = os.path.split(os.path.abspath(path))
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _localfiles.write_private_file(fd, name, _key_text(bank_id, master, url),
                                           replace=False, temp=f".{name}.tmp-{uuid.uuid4().hex}")
        finally:
            os.close(fd)
    except OSError as err:
        raise BankError(f"cannot write the key to {path}: {err}; give a new file") from err


def exported_key(path: str, bank_id: str | None) -> bytes:
    """The master key in an exported key file a user named: a regular file
    of at most :data:`MAX_KEY_FILE` bytes (a FIFO or a device is refused).

    Raises
    ------
    BankError
        If it cannot be read, is not a regular file, or is not a key of
        this bank.
    """
    try:
        raw = _localfiles.read_regular_file(path, limit=MAX_KEY_FILE, what="the key file")
    except _localfiles.Refused as err:
        raise BankError(str(err)) from None
    return parse_key(raw, path, bank_id)
