"""The bank: a key/object store on a local folder or any fsspec file system.

Keys are ``/``-separated relative paths (see :func:`_keys.validate_key`) and
map one to one onto files under the bank's root. Each object is compressed,
encrypted and authenticated under the bank's key, bound to its own key (see
:mod:`protectflow.bank.objects.crypto`); the key is found or made by
:mod:`protectflow.bank.objects._keystore` on first use. A local bank's folders are
0700 and its files 0600, whatever the umask.

Past 400 lines on purpose: :class:`Bank` is one class whose methods (the
Karbor interface, streaming, the keys) share its backend, its keyring and
its read guard; what stands apart already lives beside it (``_listing``,
``_backend``, ``crypto``, ``_keystore``).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import threading
import uuid
from collections.abc import Iterator
from typing import IO, Any

from protectflow._paths import TEMP_PREFIX, check_writable_key, validate_key, validate_prefix
from protectflow._urls import check_bank_url, default_bank_url, is_local, require_backend
from protectflow.bank.objects import _keystore, _rotating
from protectflow.bank.objects._backend import (
    FsspecBackend,
    LocalBackend,
    NotAnObject,
    ReadBuffers,
    private_makedirs,
)
from protectflow.bank.objects._header import KIND_BYTES, Value, decode, encode_parts
from protectflow.bank.objects._listing import walk
from protectflow.bank.objects.crypto import Keyring
from protectflow.errors import (
    BankError,
    BankFullError,
    BankNotFoundError,
    CorruptObjectError,
    ProtectflowError,
)

__all__ = ["Bank", "default_bank_url", "open_existing_bank"]

_SORT_DIRS = ("asc", "desc")


class Bank:
    """A key/object store: the plugins' bank (Karbor's ``Bank`` interface).

    Parameters
    ----------
    url : str, optional
        A local folder (a plain path or ``file://``), ``memory://name`` or any
        fsspec URL; :func:`default_bank_url` if omitted.
    fsync : bool
        On a local folder, ``fsync`` each object before renaming it into
        place (durable across power loss). Atomicity holds either way
        against process crashes.
    storage_options : dict, optional
        Passed to fsspec for non-local URLs (credentials, endpoints).
    password_file : str, optional
        A file holding the bank's password, read when the bank is unlocked
        or made; it comes before ``$PROTECTFLOW_PASSWORD`` (see
        :mod:`protectflow.bank.objects._keystore` for where a key is looked for).

    Notes
    -----
    A Bank pickles as its URL and options, plus its derived keys once it is
    unlocked (a dask worker gets them in memory, never from a file); the file
    system is reopened lazily in the process that unpickles it.
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        fsync: bool = True,
        storage_options: dict[str, Any] | None = None,
        password_file: str | os.PathLike[str] | None = None,
    ) -> None:
        url = check_bank_url(os.fspath(url) if url is not None else default_bank_url())
        if is_local(url):
            url = os.path.abspath(url.removeprefix("file://"))
        self.url = url
        self.fsync = fsync
        self.storage_options = dict(storage_options or {})
        self.password_file = os.fspath(password_file) if password_file is not None else None
        self._backend: LocalBackend | FsspecBackend | None = None
        self._keyring: Keyring | None = None
        self._key_lock = threading.Lock()

    # -- pickling: the URL and keys travel, the file system does not --------------
    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "fsync": self.fsync, "storage_options": self.storage_options,
                "password_file": self.password_file, "keyring": self._keyring}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], fsync=state["fsync"],  # type: ignore[misc]
                      storage_options=state["storage_options"],
                      password_file=state.get("password_file"))
        self._keyring = state.get("keyring")

    def __repr__(self) -> str:
        return f"Bank({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bank) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    @property
    def backend(self) -> LocalBackend | FsspecBackend:
        """The storage back-end, opened on first use."""
        if self._backend is None:
            try:
                self._backend = self._open_backend()
            except ProtectflowError:
                raise  # says what is missing already
            except (OSError, ValueError, ImportError) as err:
                # fsspec raises ValueError for an unknown protocol, ImportError
                # for one whose package is missing; a file in the way is OSError.
                # memory:// is not suggested: its data ends with the process.
                raise BankError(
                    f"cannot open the bank {self.url!r}: {err}; give a folder or an fsspec "
                    "URL such as s3://bucket/path with --bank or $PROTECTFLOW_BANK"
                ) from err
        return self._backend

    def _open_backend(self) -> LocalBackend | FsspecBackend:
        if is_local(self.url):
            if os.path.exists(self.url) and not os.path.isdir(self.url):
                raise NotADirectoryError("it is a file, not a folder")
            # The folder is made by the first write: reading a bank that is
            # not there (a typo) must not create one.
            return LocalBackend(self.url, fsync=self.fsync)
        # fsspec is imported here, not at the top: a local bank (the default,
        # and the fast path) never needs it, and it is slow to import.
        require_backend(self.url)
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(self.url, **self.storage_options)
        return FsspecBackend(fs, root)

    def create_root(self) -> None:
        """Make the bank's folder now (a local bank is otherwise made by its
        first write), so that an unusable location fails before anything else.

        Raises
        ------
        BankError
            If the folder cannot be made.
        """
        backend = self.backend
        if isinstance(backend, LocalBackend):
            try:
                private_makedirs(self.url)
            except OSError as err:
                raise BankError(f"cannot open the bank {self.url!r}: {err}") from err

    def exists(self) -> bool:
        """Whether the bank's folder (or its prefix in an object store) is there.

        Raises
        ------
        BankError
            If the bank cannot be opened.
        """
        backend = self.backend
        if isinstance(backend, LocalBackend):
            return os.path.isdir(self.url)
        try:
            return bool(backend.fs.exists(backend.root or "/"))
        except OSError as err:
            raise BankError(f"cannot open the bank {self.url!r}: {err}") from err

    def writable(self) -> bool:
        """Whether the bank can be written: False for a local folder on a
        read-only mount (a backup disk) or one this user may not write;
        other stores are taken as writable (their writes say otherwise).

        Raises
        ------
        BankError
            If the bank cannot be opened or probed.
        """
        backend = self.backend
        if not isinstance(backend, LocalBackend):
            return True
        try:
            return backend.writable()
        except OSError as err:
            raise BankError(f"cannot write to the bank {self.url!r}: {err}") from err

    def same_bank(self, other: Bank) -> bool:
        """Whether ``other`` is this very bank under another name: a symlink
        or another path to its folder, another URL of its store. Two local
        folders are the same when they are one folder; otherwise two banks
        of one id (their configs') are the same when an object one of them
        writes shows in the other (a bank copied whole keeps its id but is
        another bank).

        Raises
        ------
        BankError
            If a config cannot be read.
        """
        if other.url == self.url:
            return True
        mine, theirs = self.backend, other.backend
        if isinstance(mine, LocalBackend) and isinstance(theirs, LocalBackend):
            try:
                return os.path.samefile(self.url, other.url)
            except OSError:  # one of them is not there yet: not the same
                return False
        config = _keystore.read_config(mine, self.url)
        other_config = _keystore.read_config(theirs, other.url)
        if config is None or other_config is None or config.id != other_config.id:
            return False
        return _sees_probe(theirs, mine)

    # -- keys -------------------------------------------------------------------
    @property
    def keyring(self) -> Keyring:
        """The bank's keys, unlocked on first use (see :mod:`._keystore`).

        Raises
        ------
        BankNotFoundError
            If the bank is not made yet.
        BankLockedError
            If its key is missing or the password wrong.
        BankError
            If it is of the old format.
        """
        if self._keyring is None:
            with self._key_lock:
                if self._keyring is None:
                    found = _keystore.unlock(self.backend, self.url,
                                             password_file=self.password_file)
                    if found is None:
                        raise BankNotFoundError(f"the bank {self.url} holds nothing yet: "
                                                "no key to read it with")
                    self._keyring = found[1]
        return self._keyring

    def ensure_keyring(self) -> Keyring:
        """The bank's keys, made if the bank has none yet (its first write).

        Raises
        ------
        BankError
            As :attr:`keyring`, or if the key cannot be stored.
        """
        if self._keyring is not None:
            return self._keyring
        with self._key_lock:
            if self._keyring is None:
                backend = self.backend
                try:
                    found = _keystore.unlock(backend, self.url,
                                             password_file=self.password_file)
                    if found is None:
                        self.create_root()
                        found = _keystore.create_bank(
                            backend, self.url,
                            lambda raw: backend.create_exclusive("config", (raw,)),
                            password_file=self.password_file)
                except OSError as err:
                    raise BankError(f"cannot make the bank {self.url}: {err}") from err
                self._keyring = found[1]
        return self._keyring

    def with_keyring(self, keyring: Keyring) -> Bank:
        """The same bank seen through ``keyring`` rather than its own key (a
        key rotation reads under the old key and writes under the new)."""
        other = Bank(self.url, fsync=self.fsync, storage_options=self.storage_options,
                     password_file=self.password_file)
        other._keyring = keyring
        return other

    def refuse_if_rotating(self) -> None:
        """Raise if a key rotation has the bank (see :mod:`._rotating`).

        Raises
        ------
        BankLockedError
            If one is in progress, saying what to do.
        """
        _rotating.refuse_if_rotating(self.backend, self.url)

    @property
    def unlocked(self) -> bool:
        """Whether the bank's keys are in memory (they travel when it is pickled)."""
        return self._keyring is not None

    def forget_keys(self) -> None:
        """Drop the unlocked keys: the next use unlocks the bank again."""
        with self._key_lock:
            self._keyring = None

    # -- the Karbor interface ---------------------------------------------------
    def update_object(self, key: str, value: Value) -> None:
        """Store ``value`` under ``key``, atomically replacing any old value.

        Parameters
        ----------
        key : str
            A valid bank key.
        value : bytes, str, dict or list
            Read back as the same type by :meth:`get_object`.

        Raises
        ------
        BankError
            If the key is invalid, the value of another type, or the store
            refuses the write.
        """
        check_writable_key(key)
        data = encode_parts(value, key, self.ensure_keyring())
        try:
            self.backend.write(key, data)
        except OSError as err:
            raise write_error(f"cannot write bank object {key!r} in {self.url}", err) from err

    def create_object(self, key: str, value: Value, *, durable: bool = True) -> bool:
        """Store ``value`` under ``key`` only if ``key`` holds nothing yet.

        ``durable=False`` skips the object's own fsync (group commit): it is
        then durable only after a later :meth:`sync`, which must come before
        anything that names it is written.

        Returns
        -------
        bool
            True if this call created the object, False if it existed.

        Raises
        ------
        BankError
            If the key is invalid or the store refuses the write.
        """
        check_writable_key(key)
        data = encode_parts(value, key, self.ensure_keyring())
        try:
            return self.backend.create_exclusive(key, data, durable)
        except OSError as err:
            raise write_error(f"cannot create bank object {key!r} in {self.url}", err) from err

    def sync(self) -> None:
        """Make every object written so far durable (see ``durable=False``).

        On a local folder this is one ``syncfs`` of its file system, so it
        also covers objects other processes created without a sync.

        Raises
        ------
        BankError
            If the file system reports a write error.
        """
        try:
            self.backend.sync()
        except OSError as err:
            raise write_error(f"cannot sync the bank {self.url}", err) from err

    def get_object(self, key: str) -> Value:
        """Return the value stored under ``key``, authenticated.

        Raises
        ------
        BankError
            If the key is invalid or holds no object.
        CorruptObjectError
            If the object fails authentication or does not parse (the
            message names it).
        BankLockedError
            If the bank cannot be unlocked.
        """
        validate_key(key)
        with self._reading(key):
            data = self.backend.read(key)
        return decode(data, key, self.keyring)

    def get_bytes_into(self, key: str, buffers: ReadBuffers) -> bytes | memoryview:
        """:meth:`get_object` of a bytes object, read and decrypted into
        ``buffers`` (one thread's, reused from object to object): a view,
        valid until ``buffers`` serve the next read.

        Raises
        ------
        BankError
            As :meth:`get_object`, and if the object does not hold bytes.
        """
        validate_key(key)
        with self._reading(key):
            data = self.backend.read_into(key, buffers)
        buffers.plain = ReadBuffers.at_least(buffers.plain, len(data))
        kind, body = self.keyring.open_into(key, data, buffers.plain)
        if kind != KIND_BYTES:
            raise BankError(f"bank object {key!r} in {self.url} does not hold bytes")
        return body

    @contextlib.contextmanager
    def _reading(self, key: str) -> Iterator[None]:
        """The store's errors, as the bank's: a missing object, or one that
        cannot be read."""
        try:
            yield
        except FileNotFoundError:
            raise BankError(f"no bank object {key!r} in {self.url}") from None
        except NotAnObject as err:
            raise CorruptObjectError(
                f"bank object {key!r} in {self.url} is damaged: {err.filename}: {err.why}; "
                "nothing was read from it (remove what stands there; `protectflow verify "
                "ID --metadata-only` then says what each checkpoint misses)", key=key) from None
        except OSError as err:
            raise BankError(f"cannot read bank object {key!r} in {self.url}: {err}") from err

    def object_size(self, key: str) -> int:
        """The bytes the object under ``key`` takes in the bank: as stored,
        after compression and encryption (what ``stats`` adds up).

        Raises
        ------
        BankError
            If there is no such object, or it cannot be read.
        """
        try:
            return self.backend.size(validate_key(key))
        except FileNotFoundError:
            raise BankError(f"no bank object {key!r} in {self.url}") from None
        except OSError as err:
            raise BankError(f"cannot read bank object {key!r} in {self.url}: {err}") from err

    def has_object(self, key: str) -> bool:
        """Whether ``key`` holds an object.

        Raises
        ------
        BankError
            If the key is invalid.
        """
        return self.backend.exists(validate_key(key))

    def delete_object(self, key: str) -> None:
        """Delete the object under ``key``.

        Raises
        ------
        BankError
            If the key is invalid or holds no object.
        """
        check_writable_key(key)
        if not self.backend.delete(key):
            raise BankError(f"cannot delete bank object {key!r} in {self.url}: "
                            "there is no such object")

    def list_objects(
        self,
        prefix: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
        sort_dir: str | None = None,
    ) -> list[str]:
        """The keys starting with ``prefix``, sorted, one page at a time.

        Parameters
        ----------
        prefix : str, optional
            Keep keys that start with this string (not only whole segments).
        limit : int, optional
            Return at most this many keys.
        marker : str, optional
            Return only keys after this one in the listing order: pass the
            last key of a page to get the next page.
        sort_dir : {'asc', 'desc'}, optional
            The order; 'asc' if omitted.

        Returns
        -------
        list of str
            Keys, never temporary files. The walk prunes directories that
            cannot hold a key of the page, so a page costs about ``limit``
            keys plus the directories on its way, not the whole bank.

        Raises
        ------
        BankError
            If the prefix is invalid, ``limit`` negative or ``sort_dir``
            unknown.
        """
        prefix = validate_prefix(prefix)
        if sort_dir is None:
            sort_dir = "asc"
        if sort_dir not in _SORT_DIRS:
            raise BankError(f"unknown sort_dir {sort_dir!r}; use 'asc' or 'desc'")
        if limit is not None and limit < 0:
            raise BankError(f"limit must be >= 0, not {limit}")
        if limit == 0:
            return []
        keys: list[str] = []
        for key in self.iter_objects(prefix, marker=marker, reverse=sort_dir == "desc"):
            keys.append(key)
            if limit is not None and len(keys) >= limit:
                break
        return keys

    def iter_objects(
        self, prefix: str = "", *, marker: str | None = None, reverse: bool = False
    ) -> Iterator[str]:
        """Yield the keys starting with ``prefix`` lazily, in order, after ``marker``."""
        # Start at the deepest directory every matching key lies in.
        start = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        yield from walk(self.backend, start, prefix, marker, reverse)

    # -- streaming --------------------------------------------------------------
    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """Write a bytes object into ``key`` as a stream; it appears whole on exit.

        The object is sealed as a whole (one authentication tag), so the
        stream is gathered in memory first. If the block raises, nothing is
        stored and the old object stays.

        Raises
        ------
        BankError
            If the key is invalid or the store refuses the write.
        """
        check_writable_key(key)
        buffer = io.BytesIO()
        yield buffer
        self.update_object(key, buffer.getbuffer())

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        """Read the object under ``key`` as a stream of its payload (a str's
        UTF-8, a JSON value's text), authenticated whole before the first
        byte is given out.

        Raises
        ------
        BankError
            If the key is invalid, holds no object, or fails authentication.
        """
        validate_key(key)
        with self._reading(key):
            data = self.backend.read(key)
        with io.BytesIO(self.keyring.open(key, data)[1]) as f:
            yield f


def _sees_probe(writer: LocalBackend | FsspecBackend, reader: LocalBackend | FsspecBackend,
                ) -> bool:
    """Whether a temporary object ``writer`` makes shows in ``reader``."""
    probe = f"{TEMP_PREFIX}probe-{uuid.uuid4().hex}"
    try:
        writer.write(probe, (b"",))
    except OSError as err:
        raise BankError(f"cannot tell whether two banks are one: {err}") from err
    try:
        return bool(reader.exists(probe))
    finally:
        with contextlib.suppress(OSError):
            writer.delete(probe)


def write_error(what: str, err: OSError) -> BankError:
    """The bank's error for a write the store refused: :class:`BankFullError`
    when it is out of space or quota (the operation failed; nothing was
    wrong with the input), else :class:`BankError`."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return BankFullError(f"{what}: {err}; free space where the bank lives, then "
                             "`protectflow checkpoints gc` clears what the failure left")
    return BankError(f"{what}: {err}")


def open_existing_bank(
    url: str | os.PathLike[str] | None = None,
    *,
    fsync: bool = True,
    storage_options: dict[str, Any] | None = None,
    password_file: str | os.PathLike[str] | None = None,
) -> Bank:
    """The bank at ``url`` for a command that only reads it: one that is not
    there is an error, never an empty bank (a mistyped ``--bank``). A bank
    that holds a config is unlocked at once, so that a missing key or a wrong
    password is the first thing said, not taken for damage further on.

    Parameters are those of :class:`Bank`.

    Raises
    ------
    BankError
        If the URL is malformed.
    BankNotFoundError
        If no bank is there.
    BankLockedError
        If its key cannot be had (missing, the password wrong).
    MissingDependencyError
        If the URL's file system needs a package that is not installed.
    """
    bank = Bank(url, fsync=fsync, storage_options=storage_options,
                password_file=password_file)
    if not bank.exists():
        raise BankNotFoundError(
            f"there is no bank at {bank.url!r}: check the --bank given (or "
            "$PROTECTFLOW_BANK, or the config file's bank); `protectflow protect` makes one"
        )
    if _keystore.read_config(bank.backend, bank.url) is not None:
        bank.keyring  # noqa: B018 -- unlocks it
    return bank

