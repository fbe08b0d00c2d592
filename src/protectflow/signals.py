"""Termination signals on Ctrl-C's path.

Python turns SIGINT into :class:`KeyboardInterrupt` in the main thread, and
every operation handles that: the run loop cancels the hooks not started,
waits for those running, and the operation marks its checkpoint and releases
its lease. SIGTERM (``kill``, systemd, a container's stop) would otherwise end
the process at once, leaving the checkpoint ``protecting`` and its lease held
until the lease expires. :func:`terminate_as_interrupt` raises
:class:`~protectflow.errors.Terminated`, a ``KeyboardInterrupt``, instead, so
one code path serves both.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Sequence
from types import FrameType

from protectflow.errors import Terminated

__all__ = ["DEFAULT_SIGNALS", "terminate_as_interrupt"]

#: SIGTERM, and SIGHUP where it exists (the terminal was closed).
DEFAULT_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_as_interrupt(
    signals: Sequence[signal.Signals] = DEFAULT_SIGNALS,
) -> Iterator[None]:
    """While the block runs, raise :class:`~protectflow.errors.Terminated` in
    the main thread on any of ``signals``; the previous handlers come back on exit.

    Outside the main thread (where Python cannot install a handler) the block
    runs unchanged.

    Parameters
    ----------
    signals : sequence of signal.Signals
        The signals to take as Ctrl-C (SIGTERM and SIGHUP by default).

    Raises
    ------
    Terminated
        From inside the block, when one of ``signals`` arrives.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
