"""How far a hook is in its data, while it runs: a plugin calls
:func:`advance` as it reads (bytes, and files done), and whoever shows the
run's progress -- the command's bar -- listens with :func:`watching`.

The channel is this process's: hooks run by the serial and threads
executors (and a dask cluster in this process) reach the bar as they read;
hooks in other processes do not (their run still counts hooks). With no
listener, :func:`advance` costs one test of an empty list.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Sink", "advance", "watching"]

#: Told ``(bytes, files)`` each time a hook advances.
Sink = Callable[[int, int], None]

_sinks: list[Sink] = []
_lock = threading.Lock()


def advance(nbytes: int, files: int = 0) -> None:
    """Say that ``nbytes`` more bytes were processed (read, or found
    unchanged and skipped), and ``files`` more files finished."""
    if not _sinks:
        return
    for sink in tuple(_sinks):
        sink(nbytes, files)


@contextmanager
def watching(sink: Sink) -> Iterator[None]:
    """Give ``sink`` every :func:`advance` made while the block runs."""
    with _lock:
        _sinks.append(sink)
    try:
        yield
    finally:
        with _lock:
            _sinks.remove(sink)
