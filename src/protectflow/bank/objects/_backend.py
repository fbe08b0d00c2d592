"""Where bank bytes go: a local folder through ``os``, anything else through fsspec.

Both back-ends write atomically per object:

- local folder: the data goes to ``.pftmp-<random>`` in the object's own
  directory, is flushed and ``fsync``-ed, then ``os.replace``-d onto the key,
  so a reader -- or a later process after a crash mid-write -- sees the old
  object or the new one, never half of one. A crash leaves the temporary file
  behind; listing ignores it.
- ``memory://`` and object stores (s3, gcs, azure): one put is atomic already,
  so a whole value is put directly (streamed writes go through a temporary
  object there too).
- other fsspec file systems: temporary object then ``fs.mv``.

Group commit (local folder, Linux): ``create_exclusive(..., durable=False)``
skips the per-object ``fsync``; :meth:`LocalBackend.sync` then makes every
write so far durable at once with ``syncfs(2)`` on the bank's file system
(one journal commit, also covering the directory entries ``os.link`` made
and objects other processes created without a sync). Where ``syncfs`` is
missing, ``durable=False`` is ignored and each object is fsync-ed as usual.
Tiny objects created that way (chunk refs) are hard links to one hidden
template file per payload: on ext4 a new inode is the dear part of a create
(0.3-0.5 ms here), a link is not. Objects are never changed in place -- a
write replaces the file -- so sharing an inode is invisible to readers.

Create-if-absent (:meth:`create_exclusive`) is atomic across processes on a
local folder: the object is written whole under a temporary name, then
``os.link``-ed onto the key, which fails if the key exists. On S3 it is one
conditional put (``If-None-Match: *``), which the store makes atomic across
machines. On ``memory://`` it is atomic within the process; on other file
systems it is a check then a put, atomic only as far as the store offers
(a new bank's config is read back as well: see
:func:`protectflow.bank.objects._keystore.create_bank`).

Privacy: a local bank's folders are made 0700 and its files 0600 (modes given
to ``mkdir`` and ``open``, which a umask can only narrow), so another local
user can read nothing in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import stat
import sys
import threading
import uuid
from typing import Any

from protectflow import _faults
from protectflow._paths import TEMP_PREFIX
from protectflow.bank.objects._header import Parts
from protectflow.bank.objects._limits import max_stored_size

#: Protocols whose single put is atomic, so no temporary object is needed.
_ATOMIC_PUT = frozenset({"memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
#: Protocols whose put can be made conditional on the key's absence (S3's
#: ``If-None-Match: *``, through s3fs's ``mode="create"``).
_CONDITIONAL_PUT = frozenset({"s3", "s3a"})
_EXCLUSIVE_LOCK = threading.Lock()
#: Objects up to this size created with ``durable=False`` share an inode.
_SHARED_MAX = 64
#: The most bytes given to one ``write(2)``: here (Linux 6, ext4) a 4 MiB
#: write into a new file cost 1.5 to 8 times the system time of the same
#: bytes in 1 MiB writes (the kernel's page-cache allocation for a large
#: write), which made writing a first protect's chunks its dearest part.
_WRITE_MAX = 1 << 20


class NotAnObject(OSError):
    """What stands at an object's path in a local bank is no object a bank
    writes: a FIFO, a device, a symbolic link, a file larger than its kind
    may be. The bank reports it as a damaged object, naming the path."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(errno.EINVAL, why, path)
        self.why = why


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def private_makedirs(path: str) -> None:
    """Make ``path`` and its missing parents as folders of mode 0700.

    ``os.makedirs(path, 0o700)`` would give the parents the umask's mode.
    """
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)


def _temp_name() -> str:
    return TEMP_PREFIX + uuid.uuid4().hex


@functools.cache
def _syncfs() -> Any:
    """libc's ``syncfs`` (Linux), or None: then writes stay fsync-ed one by one."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


class ReadBuffers:
    """Two buffers one thread reuses, object after object, to read an
    object's stored bytes and its plaintext (see :meth:`Bank.get_bytes_into`):
    no fresh allocation, hence no fresh page faults, per object."""

    __slots__ = ("plain", "raw")

    def __init__(self) -> None:
        self.raw = bytearray()
        self.plain = bytearray()

    @staticmethod
    def at_least(buf: bytearray, size: int) -> bytearray:
        """``buf`` if it holds ``size`` bytes, else a new buffer that does (a
        buffer with views on it cannot be resized in place)."""
        return buf if len(buf) >= size else bytearray(max(size, 2 * len(buf)))


class LocalBackend:
    """A bank in a local folder, through ``os`` calls (the fast path)."""

    def __init__(self, root: str, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self._templates: dict[bytes, str] = {}
        self._templates_lock = threading.Lock()

    def path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/")) if key else self.root

    def size(self, key: str) -> int:
        """The bytes the object takes in the store (encrypted, compressed)."""
        return os.stat(self.path(key)).st_size

    def _open_object(self, key: str) -> tuple[int, int]:
        """``(descriptor, size)`` of the object file under ``key``: opened
        without following a symlink or waiting on a FIFO, and refused unless a
        regular file no larger than its kind may be (a device, a FIFO or a
        huge file planted in the bank must not hang or exhaust a reader)."""
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except IsADirectoryError:
            raise FileNotFoundError(key) from None
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise NotAnObject(path, "it is a symbolic link, which a bank never "
                                  "makes") from None
            raise
        st = os.fstat(fd)
        limit = max_stored_size(key)
        why = (None if stat.S_ISREG(st.st_mode) else
               f"it is {_kind(st.st_mode)}, not a regular file")
        if why is None and st.st_size > limit:
            why = f"it holds {st.st_size} bytes, more than the {limit} such an object may"
        if why is not None:
            os.close(fd)
            raise NotAnObject(path, why)
        return fd, st.st_size

    def read(self, key: str) -> bytes:
        fd, _ = self._open_object(key)
        with os.fdopen(fd, "rb") as f:
            data = f.read(max_stored_size(key) + 1)
        if len(data) > max_stored_size(key):  # it grew since the check
            raise NotAnObject(self.path(key), "it grew past the size such an object may have")
        return data

    def read_limited(self, key: str, limit: int) -> bytes:
        """At most ``limit`` bytes of the object: a clear one (a config, a
        password entry, a rotation's mark), which anyone who can write the
        bank may have made large, or a FIFO (opened without waiting for a
        writer, then refused)."""
        try:
            fd = os.open(self.path(key), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except IsADirectoryError:
            raise FileNotFoundError(key) from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", self.path(key))
            return f.read(limit)

    def read_into(self, key: str, buffers: ReadBuffers) -> memoryview:
        """The object's bytes, read into ``buffers.raw`` (grown as needed)."""
        fd, size = self._open_object(key)
        with open(fd, "rb", buffering=0) as f:
            buffers.raw = buf = ReadBuffers.at_least(buffers.raw, size + 1)
            got = 0
            while n := f.readinto(memoryview(buf)[got:]):
                got += n
                if got == len(buf):  # it grew since the fstat: read the rest, bounded
                    rest = f.read(max_stored_size(key) + 1 - got)
                    if got + len(rest) > max_stored_size(key):
                        raise NotAnObject(self.path(key), "it grew past the size such an "
                                          "object may have")
                    return memoryview(bytes(buf) + rest)
            return memoryview(buf)[:got]

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def _open_temp(self, path: str) -> tuple[int, str]:
        directory = os.path.dirname(path)
        temp = os.path.join(directory, _temp_name())
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            return os.open(temp, flags, 0o600), temp
        except FileNotFoundError:
            private_makedirs(directory)
            return os.open(temp, flags, 0o600), temp

    def _write_temp(self, path: str, data: Parts, durable: bool = True) -> str:
        fd, temp = self._open_temp(path)
        try:
            for part in data:
                view = memoryview(part)
                budget = _faults.write_budget()  # a test hook: None unless asked for
                if budget is not None:
                    view = _faulty_write(fd, view, budget)
                while view:
                    view = view[os.write(fd, view[:_WRITE_MAX]):]
            if self.fsync and (durable or _syncfs() is None):
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temp)
            raise
        os.close(fd)
        return temp

    def write(self, key: str, data: Parts) -> None:
        path = self.path(key)
        temp = self._write_temp(path, data)
        try:
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def create_exclusive(self, key: str, data: Parts, durable: bool = True) -> bool:
        path = self.path(key)
        if not durable and sum(map(len, data)) <= _SHARED_MAX and (
                not self.fsync or _syncfs() is not None):
            created = self._link_shared(path, b"".join(data))
            if created is not None:
                return created
        temp = self._write_temp(path, data, durable)
        try:
            os.link(temp, path)  # atomic: fails if the key exists
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links here (some FUSE/SMB mounts): O_EXCL
            return self._create_excl_fallback(path, data)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)

    def _create_excl_fallback(self, path: str, data: Parts) -> bool:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            for part in data:
                f.write(part)
        return True

    def _link_shared(self, path: str, data: bytes) -> bool | None:
        """Create ``path`` as a link to the template holding ``data``: whether
        it did (False: the key exists), or None if links fail here."""
        for _ in range(4):
            template = self._template(data)
            try:
                os.link(template, path)  # atomic: fails if the key exists
                return True
            except FileExistsError:
                return False
            except FileNotFoundError:
                if not os.path.exists(template):  # removed by a sync: make another
                    self._drop_template(data, template)
                else:
                    private_makedirs(os.path.dirname(path))
            except OSError as err:
                if err.errno != errno.EMLINK:
                    return None
                self._drop_template(data, template)  # the inode's link count is full
        return None

    def _template(self, data: bytes) -> str:
        with self._templates_lock:
            template = self._templates.get(data)
            if template is None:
                template = self._write_temp(os.path.join(self.root, "-"), (data,), False)
                self._templates[data] = template
            return template

    def _drop_template(self, data: bytes, template: str) -> None:
        with self._templates_lock:
            if self._templates.get(data) == template:
                del self._templates[data]
        with contextlib.suppress(OSError):
            os.unlink(template)

    def sync(self) -> None:
        """Make every write so far to the bank's file system durable; drop
        the templates (the next tiny object makes a fresh one)."""
        with self._templates_lock:
            templates, self._templates = list(self._templates.values()), {}
        for template in templates:  # the links made from them stay
            with contextlib.suppress(OSError):
                os.unlink(template)
        syncfs = _syncfs()
        if not self.fsync or syncfs is None:
            return  # then every object was fsync-ed already
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs: {os.strerror(err)}", self.root)
        finally:
            os.close(fd)

    def writable(self) -> bool:
        """Whether files can be made in the bank's folder (False on a
        read-only mount or a folder this user may not write): a probe file
        made and removed at once. A folder not made yet counts as writable."""
        if not os.path.isdir(self.root):
            return True
        probe = os.path.join(self.root, _temp_name())
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as err:
            if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                return False
            raise
        os.unlink(probe)
        return True

    def delete(self, key: str) -> bool:
        try:
            os.unlink(self.path(key))
            return True
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False

    def listdir(self, rel: str) -> list[tuple[str, bool]]:
        try:
            with os.scandir(self.path(rel)) as it:
                return [(e.name, e.is_dir()) for e in it]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def prune(self, rel: str) -> None:
        """Remove folder ``rel`` and the folders above it, up to the bank's
        root, while they are empty (a writer that needs one makes it again)."""
        while rel:
            try:
                os.rmdir(self.path(rel))
            except OSError:
                return
            rel = rel.rpartition("/")[0]


def _faulty_write(fd: int, view: memoryview, budget: int) -> memoryview:
    """Write up to ``budget`` bytes; if that is not all, count them (and die:
    the kill-mid-write test hook of :mod:`protectflow._faults`)."""
    head = view[:budget]
    while head:
        head = head[os.write(fd, head):]
    _faults.wrote(min(budget, len(view)))
    return view[budget:]


def _unsupported(err: OSError) -> bool:
    """Whether a store refused a conditional put as something it does not do."""
    text = str(err)
    return "NotImplemented" in text or "501" in text


class FsspecBackend:
    """A bank on any fsspec file system (``memory://``, ``s3://``, ...)."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.atomic_put = protocol in _ATOMIC_PUT
        self.memory = protocol == "memory"
        #: Whether a put can be made conditional on the key's absence.
        self.conditional = protocol in _CONDITIONAL_PUT

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else (self.root or "/")

    def size(self, key: str) -> int:
        """The bytes the object takes in the store (encrypted, compressed)."""
        return int(self.fs.size(self.path(key)))

    def read(self, key: str) -> bytes:
        limit = max_stored_size(key)
        try:  # a ranged read: a huge object planted in the store is not fetched whole
            data: bytes = self.fs.cat_file(self.path(key), start=0, end=limit + 1)
        except (IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(key) from None
        if len(data) > limit:
            raise NotAnObject(self.path(key), f"it holds more than the {limit} bytes "
                              "such an object may")
        return data

    def read_limited(self, key: str, limit: int) -> bytes:
        """At most ``limit`` bytes of the object."""
        try:
            data: bytes = self.fs.cat_file(self.path(key), start=0, end=limit)
        except (IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(key) from None
        return data

    def read_into(self, key: str, buffers: ReadBuffers) -> memoryview:
        """The object's bytes (a remote store hands over its own buffer)."""
        return memoryview(self.read(key))

    def exists(self, key: str) -> bool:
        return bool(self.fs.isfile(self.path(key)))

    def write(self, key: str, parts: Parts) -> None:
        path = self.path(key)
        data = b"".join(parts)
        if self.atomic_put:
            self.fs.pipe_file(path, data)
            return
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        temp = f"{parent}/{_temp_name()}"
        self.fs.pipe_file(temp, data)
        self.fs.mv(temp, path)

    def create_exclusive(self, key: str, data: Parts, durable: bool = True) -> bool:
        if self.conditional:
            # One conditional put (S3's ``If-None-Match: *``): the store makes
            # it atomic across processes and machines.
            try:
                self.fs.pipe_file(self.path(key), b"".join(data), mode="create")
            except FileExistsError:
                return False
            except OSError as err:
                if not _unsupported(err):
                    raise
                self.conditional = False  # an S3-compatible store without it: as others
            else:
                return True
        with _EXCLUSIVE_LOCK:
            if self.exists(key):
                return False
            self.write(key, data)
            return True

    def delete(self, key: str) -> bool:
        path = self.path(key)
        if not self.fs.isfile(path):
            return False
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def sync(self) -> None:
        """Nothing to do: each put is as durable as the store makes it."""

    def prune(self, rel: str) -> None:
        """Nothing to do: an object store has no empty folders to leave."""

    def listdir(self, rel: str) -> list[tuple[str, bool]]:
        path = self.path(rel)
        try:
            entries = self.fs.ls(path, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        out = []
        for entry in entries:
            name = entry["name"].rstrip("/")
            if name == path.rstrip("/"):  # ls of a file lists the file itself
                continue
            out.append((name.rsplit("/", 1)[-1], entry["type"] == "directory"))
        return out
