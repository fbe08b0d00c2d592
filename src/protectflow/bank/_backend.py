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

Create-if-absent (:meth:`create_exclusive`) is atomic across processes on a
local folder: the object is written whole under a temporary name, then
``os.link``-ed onto the key, which fails if the key exists. On ``memory://``
it is atomic within the process; on other file systems it is a check then a
put, atomic only as far as the store offers.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import uuid
from collections.abc import Iterator
from typing import IO, Any

from protectflow.bank._keys import TEMP_PREFIX

#: Protocols whose single put is atomic, so no temporary object is needed.
_ATOMIC_PUT = frozenset({"memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
_EXCLUSIVE_LOCK = threading.Lock()


def _temp_name() -> str:
    return TEMP_PREFIX + uuid.uuid4().hex


class LocalBackend:
    """A bank in a local folder, through ``os`` calls (the fast path)."""

    def __init__(self, root: str, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync

    def path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/")) if key else self.root

    def read(self, key: str) -> bytes:
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except IsADirectoryError:
            raise FileNotFoundError(key) from None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def _open_temp(self, path: str) -> tuple[int, str]:
        directory = os.path.dirname(path)
        temp = os.path.join(directory, _temp_name())
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            return os.open(temp, flags, 0o644), temp
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
            return os.open(temp, flags, 0o644), temp

    def _write_temp(self, path: str, data: bytes) -> str:
        fd, temp = self._open_temp(path)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temp)
            raise
        os.close(fd)
        return temp

    def write(self, key: str, data: bytes) -> None:
        path = self.path(key)
        temp = self._write_temp(path, data)
        try:
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def create_exclusive(self, key: str, data: bytes) -> bool:
        path = self.path(key)
        temp = self._write_temp(path, data)
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

    def _create_excl_fallback(self, path: str, data: bytes) -> bool:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True

    @contextlib.contextmanager
    def open_write(self, key: str, header: bytes) -> Iterator[IO[bytes]]:
        path = self.path(key)
        fd, temp = self._open_temp(path)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header)
                yield f
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def open_read(self, key: str) -> IO[bytes]:
        path = self.path(key)
        if os.path.isdir(path):
            raise FileNotFoundError(key)
        return open(path, "rb")

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


class FsspecBackend:
    """A bank on any fsspec file system (``memory://``, ``s3://``, ...)."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        self.atomic_put = protocol in _ATOMIC_PUT
        self.memory = protocol == "memory"

    def path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else (self.root or "/")

    def read(self, key: str) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self.path(key))
        except (IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(key) from None
        return data

    def exists(self, key: str) -> bool:
        return bool(self.fs.isfile(self.path(key)))

    def write(self, key: str, data: bytes) -> None:
        path = self.path(key)
        if self.atomic_put:
            self.fs.pipe_file(path, data)
            return
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        temp = f"{parent}/{_temp_name()}"
        self.fs.pipe_file(temp, data)
        self.fs.mv(temp, path)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        with _EXCLUSIVE_LOCK:
            if self.exists(key):
                return False
            self.write(key, data)
            return True

    @contextlib.contextmanager
    def open_write(self, key: str, header: bytes) -> Iterator[IO[bytes]]:
        if self.memory:  # spool, then one atomic put
            buffer = io.BytesIO()
            buffer.write(header)
            yield buffer
            self.fs.pipe_file(self.path(key), buffer.getvalue())
            return
        path = self.path(key)
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        temp = f"{parent}/{_temp_name()}"
        try:
            with self.fs.open(temp, "wb") as f:
                f.write(header)
                yield f
            self.fs.mv(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                self.fs.rm_file(temp)
            raise

    def open_read(self, key: str) -> IO[bytes]:
        path = self.path(key)
        if not self.fs.isfile(path):
            raise FileNotFoundError(key)
        f: IO[bytes] = self.fs.open(path, "rb")
        return f

    def delete(self, key: str) -> bool:
        path = self.path(key)
        if not self.fs.isfile(path):
            return False
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

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
