"""The guard of a freeze: a process of its own, so that it outlives a crash.

Run as ``python -m protectflow.plugins.builtin.app._guard TOKEN`` by
:func:`._freeze.freeze`, with a pipe from the freezing process on stdin: the
first line is the freeze's spec (JSON; the thaw command stays in this
process's memory), then ``frozen`` once the freeze command has run; the
pipe's end (or a new parent pid) means the freezing process exited. The
protocol around the token is :mod:`._freeze`'s.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import sys
import time
from typing import Any

from protectflow.errors import CommandError, LocalPluginError
from protectflow.plugins.builtin._private import write_private
from protectflow.plugins.builtin.app._freeze import (
    FROZEN,
    alive,
    claim,
    claimant,
    claims,
    run_phase,
)

_POLL = 0.02
_LINGER_POLL = 0.2
_RETRIES_ONCE_ALONE = 3  # thaw attempts after the freezing process exited


class _Parent:
    """The freezing process, as seen through the pipe and the parent pid."""

    def __init__(self) -> None:
        self.pid = os.getppid()
        self.gone = False
        self.frozen = False

    def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` for news from the freezing process."""
        if self.gone or os.getppid() != self.pid:
            self.gone = True
            time.sleep(seconds)
            return
        ready, _, _ = select.select([0], [], [], seconds)
        if ready:
            data = os.read(0, 64)
            self.gone = not data
            self.frozen = self.frozen or FROZEN.strip() in data


def _read_spec() -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 65536)
        if not chunk:
            raise LocalPluginError("the freezing process sent no spec")
        data += chunk
    spec: dict[str, Any] = json.loads(data)
    return spec


def _take_lock(path: str, timeout: float) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    give_up = time.time() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.time() > give_up:
                os.close(fd)
                raise LocalPluginError(f"could not lock {path} in {timeout} s: the "
                                       "application holds it") from None
            time.sleep(_POLL / 4)


def main(token: str) -> int:
    """Guard the freeze of ``token``; the exit code is 0 unless it never began."""
    parent = _Parent()
    try:
        spec = _read_spec()
        lock = _take_lock(spec["lock_file"], spec["command_timeout"]) if (
            spec["mode"] == "lock") else None
        write_private(token, json.dumps({"pid": os.getpid(), "frozen_at": time.time(),
                                         "mode": spec["mode"]}).encode())
    except (LocalPluginError, OSError, ValueError, KeyError) as err:
        print(f"error: {err}", flush=True)
        return 1
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    _watch(token, spec, parent, lock)
    return 0


def _watch(token: str, spec: dict[str, Any], parent: _Parent, lock: int | None) -> None:
    # The clock starts now, once this guard is ready -- not when the freezing
    # process started it, which may be a second earlier under load -- and
    # nothing is frozen before now: the freeze command runs only after
    # "ready", and in lock mode the lock is this process's. Until the freezing
    # process says "frozen", its freeze command may still be running: it is
    # allowed its own timeout on top. So a freeze is never unguarded, and
    # never thawed by the guard before it has had its freeze_timeout.
    deadline = time.time() + spec["command_timeout"] + spec["freeze_timeout"]
    counted_from_frozen = False
    retries = _RETRIES_ONCE_ALONE
    while retries:
        parent.wait(_POLL)
        if parent.frozen and not counted_from_frozen:
            deadline, counted_from_frozen = time.time() + spec["freeze_timeout"], True
        pending = claims(token)  # before the token: a failed thaw puts it back
        if os.path.exists(token):
            if parent.gone:
                reason = "the process that froze the application exited"
                retries -= 1
            elif time.time() > deadline:
                reason = f"the freeze outlived its {spec['freeze_timeout']} s freeze_timeout"
                deadline = time.time() + spec["freeze_timeout"]  # when a failed thaw retries
            else:
                continue
            claimed = claim(token)
        elif not pending or lock is not None:
            return  # thawed by another; in lock mode, this exit releases the lock
        else:  # a claimant that died mid-thaw: finish its thaw
            dead = [c for c in pending if not alive(claimant(c))]
            reason = "the process thawing the application exited"
            claimed = _take_over(dead[0], token) if dead else None
        if claimed is not None and _thaw(token, claimed, spec, lock=lock, reason=reason,
                                         parent=parent):
            return
    with contextlib.suppress(FileNotFoundError):  # no one is left to thaw it
        os.unlink(token)


def _take_over(claimed: str, token: str) -> str | None:
    mine = claimed.rsplit(".claimed", 1)[0] + f".claimed{os.getpid()}-{time.monotonic_ns()}"
    try:
        os.rename(claimed, mine)
    except FileNotFoundError:
        return None
    return mine


def _thaw(token: str, claimed: str, spec: dict[str, Any], *, lock: int | None, reason: str,
          parent: _Parent) -> bool:
    """Thaw as the guard; True when done (the token's files are then gone
    or left to the thaw hook, and removed when the freezing process exits)."""
    try:
        if lock is not None:
            os.close(lock)
        else:
            run_phase(spec, "thaw")
    except CommandError:
        os.rename(claimed, token)  # still frozen: keep guarding, retry later
        if parent.gone:
            time.sleep(1.0)  # alone: the next of a few attempts, a second apart
        return False
    if not parent.gone:  # its thaw hook must learn that the freeze ended early
        record = {"by": "guard", "reason": reason, "ok": True, "at": time.time()}
        write_private(token + ".thawed", json.dumps(record).encode(), replace=True)
    os.unlink(claimed)  # after the record: a waiting thaw sees one or the other
    while os.path.exists(token + ".thawed"):
        parent.wait(_LINGER_POLL)
        if parent.gone:  # no thaw hook will read it now
            with contextlib.suppress(FileNotFoundError):
                os.unlink(token + ".thawed")
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
