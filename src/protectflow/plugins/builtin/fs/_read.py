"""Reading the files a scan found, as they were scanned or not at all.

- **Never followed**: a file is opened with ``O_NOFOLLOW | O_NONBLOCK``
  (a FIFO swapped in does not block) and its ``fstat`` compared with the
  scan's: another type or inode (a file replaced by a symlink to
  ``/etc/passwd``, a folder, a new file) is reported and not stored.
- **Bounded**: at most the scanned size is read; a file that grew since
  keeps its first scanned bytes, and the run says so.
- **Changed while read**: size, mtime and ctime before and after each read
  are compared; a file that changed is read again, up to :data:`ATTEMPTS`
  times, and the last read is kept with a warning.
- **Sparse**: a file with fewer blocks than bytes is read by its data
  extents (``SEEK_DATA``/``SEEK_HOLE``): holes are neither read nor stored.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator

from protectflow.plugins.builtin.fs._entries import FileEntry
from protectflow.plugins.builtin.fs._meta import open_dir, open_quietly, split

__all__ = ["ATTEMPTS", "clip", "data_extents", "open_scanned", "read_stream", "stat_key"]

#: Reads of a file that keeps changing before the last one is kept.
ATTEMPTS = 3
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
#: Paths shorter than this are opened whole; longer ones a folder at a time.
_SHORT_PATH = 3800

Extents = list[list[int]]


def stat_key(st: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file's contents change: size, mtime, ctime."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def open_scanned(root: str, entry: FileEntry) -> tuple[int, os.stat_result] | str:
    """The scanned regular file ``entry`` under ``root``, opened without
    following a symlink, and its ``fstat``; or, if it is gone or no longer
    the file the scan saw, why (a warning for the run)."""
    rel = entry.path
    try:
        fd = _open(root, rel)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f"{rel}: replaced by a symlink since the scan; not followed, not stored"
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"{rel}: gone since the scan; not stored"
        return f"{rel}: cannot be opened ({err.strerror}); not stored"
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (st.st_ino, st.st_dev) != (entry.ino, entry.dev):
        os.close(fd)
        return f"{rel}: replaced by another file or something else since the scan; not stored"
    return fd, st


def _open(root: str, rel: str) -> int:
    full = os.path.join(root, rel)
    if len(os.fsencode(full)) < _SHORT_PATH:
        return open_quietly(full, READ_FLAGS)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parent, name = split(rel)
        dir_fd = open_dir(root_fd, parent)
    finally:
        os.close(root_fd)
    try:
        return open_quietly(name, READ_FLAGS, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def data_extents(fd: int, size: int) -> Extents:
    """``[offset, length]`` of each data region of the first ``size`` bytes."""
    out: Extents = []
    offset = 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as err:
                if err.errno == errno.ENXIO:  # no data after offset: a hole to the end
                    break
                raise
            if start >= size:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            out.append([start, end - start])
            offset = end
    except OSError:  # no SEEK_DATA here: all of it is data
        return [[0, size]] if size else []
    return out


def read_stream(fd: int, extents: Extents, buffer: bytearray) -> Iterator[memoryview]:
    """The bytes of ``extents`` of ``fd``, one after the other, in pieces the
    size of ``buffer``: each a view of it, valid until the next is asked for
    (a fresh buffer per piece costs page faults, see :mod:`._chunkfiles`).
    Stops early where the file ends sooner."""
    view, n = memoryview(buffer), 0
    for offset, length in extents:
        end = offset + length
        while offset < end:
            got = os.preadv(fd, [view[n:n + min(len(view) - n, end - offset)]], offset)
            if not got:
                if n:
                    yield view[:n]
                return
            n, offset = n + got, offset + got
            if n == len(view):
                yield view
                n = 0
    if n:
        yield view[:n]


def clip(extents: Extents, length: int) -> Extents:
    """``extents`` holding only the first ``length`` bytes of their stream."""
    out: Extents = []
    for offset, size in extents:
        if length <= 0:
            break
        out.append([offset, min(size, length)])
        length -= size
    return out
