"""Fault injection: a test hook, not a feature.

Set ``PROTECTFLOW_FAULTS`` to comma-separated ``NAME=N`` items and the process
kills itself with SIGKILL (no clean-up, no ``finally``) at that point:

``kill-after-hooks=N``
    right after the journal batch that records the N-th hook end (an end is
    a success, a failure or a timeout) is durable;
``kill-before-journal=N``
    just before writing the journal batch that would record the N-th hook
    end: the hook ran, but no record of its end survives;
``kill-mid-write=BYTES``
    in the middle of a bank write (into a local folder), once this process
    has written BYTES bytes of bank objects in all;
``kill-rotate-after-steps=N``
    once a key rotation has made N steps durable (its start, each batch of
    chunks or objects, each phase: see :mod:`protectflow.bank.rotation`).

The variable is read where it is used, each time; unset, each check is one
dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["after_journal", "before_journal", "rotation_step", "write_budget", "wrote"]

VARIABLE = "PROTECTFLOW_FAULTS"

_written = 0
_lock = threading.Lock()


def _fault(name: str) -> int | None:
    spec = os.environ.get(VARIABLE)
    if not spec:
        return None
    for item in spec.split(","):
        key, _, value = item.strip().partition("=")
        if key == name:
            return int(value)
    return None


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def before_journal(ended: int) -> None:
    """About to record the ``ended``-th hook end (or fewer)."""
    limit = _fault("kill-before-journal")
    if limit is not None and ended >= limit:
        _die()


def after_journal(ended: int) -> None:
    """``ended`` hook ends are now recorded."""
    limit = _fault("kill-after-hooks")
    if limit is not None and ended >= limit:
        _die()


def rotation_step(done: int) -> None:
    """A key rotation has made ``done`` steps durable."""
    limit = _fault("kill-rotate-after-steps")
    if limit is not None and done >= limit:
        _die()


def write_budget() -> int | None:
    """Bytes this process may still write to the bank before it is killed,
    or ``None`` when no ``kill-mid-write`` fault is set."""
    limit = _fault("kill-mid-write")
    return None if limit is None else max(0, limit - _written)


def wrote(n: int) -> None:
    """``n`` more bytes went to the bank; die if that used the budget up."""
    global _written
    with _lock:
        _written += n
        total = _written
    limit = _fault("kill-mid-write")
    if limit is not None and total >= limit:
        _die()
