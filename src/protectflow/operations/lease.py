"""Holding a checkpoint while an operation runs on it.

An operation takes the checkpoint's lease before it changes anything and
renews it every third of its life while it runs, so a second operation (or
``checkpoints gc``) sees it busy; a crash stops the renewals and the lease
expires. If the block raises, the checkpoint is left in a final status rather
than stuck in an in-progress one.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from protectflow.bank import Checkpoint
from protectflow.errors import BankError
from protectflow.states import ERROR

__all__ = ["LEASE_TTL", "default_owner", "failing_on_crash", "holding", "lease_ttl", "renewing"]

#: Seconds an operation's lease lasts unless ``$PROTECTFLOW_LEASE_TTL`` says
#: otherwise; it is renewed every third of that.
LEASE_TTL = 60.0
LEASE_TTL_VARIABLE = "PROTECTFLOW_LEASE_TTL"


def lease_ttl() -> float:
    """Seconds an operation's lease lasts: ``$PROTECTFLOW_LEASE_TTL``, else
    :data:`LEASE_TTL`. Read at each operation's start, never at import.

    Raises
    ------
    BankError
        When the variable is set to anything but a positive number.
    """
    text = os.environ.get(LEASE_TTL_VARIABLE)
    if not text:
        return LEASE_TTL
    try:
        ttl = float(text)
    except ValueError:
        ttl = 0.0
    if not ttl > 0 or ttl == float("inf"):
        raise BankError(f"${LEASE_TTL_VARIABLE}={text!r} is not a positive number of "
                        "seconds; unset it or give one (60 by default)")
    return ttl


def default_owner() -> str:
    """``user@host:pid``: who holds a lease, for people reading ``checkpoints show``.

    Returns
    -------
    str
        The owner string of this process.
    """
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


@contextmanager
def renewing(checkpoint: Checkpoint) -> Iterator[None]:
    """Renew the checkpoint's lease every third of its life while the block runs."""
    stop = threading.Event()
    ttl = lease_ttl()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            try:
                checkpoint.renew(ttl=ttl)
            except BankError:
                return  # lost: gc will judge the checkpoint; the run goes on

    thread = threading.Thread(target=renew, name="protectflow-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def holding(checkpoint: Checkpoint, operation: str, owner: str, *,
            reclaim_dead: bool = False) -> Iterator[None]:
    """Take the checkpoint's lease for ``operation``, renew it while the block
    runs, and give it up after (whatever happened).

    Raises
    ------
    BankError
        If another operation holds the checkpoint.
    """
    checkpoint.acquire(operation, owner, ttl=lease_ttl(), reclaim_dead=reclaim_dead)
    try:
        with renewing(checkpoint):
            yield
    finally:
        checkpoint.release()


@contextmanager
def failing_on_crash(checkpoint: Checkpoint, status: str) -> Iterator[None]:
    """If the block raises (Ctrl-C, a bank error), leave ``status``, not a
    checkpoint stuck in an in-progress state."""
    try:
        yield
    except BaseException as err:
        if status == ERROR:  # the disk may be full: make room for the last writes
            checkpoint.drop_reserve()
        # Already moved on, or the bank is gone: gc resolves it then.
        with suppress(BankError):
            checkpoint.transition(status, reason=f"interrupted: {type(err).__name__}: {err}")
        raise
    finally:
        if status == ERROR:  # protect and copy targets hold the lease from create()
            checkpoint.release()
