"""Freezing an application so that it is always thawed again.

:func:`freeze` starts a guard process (:mod:`._guard`) before freezing
anything and hands it the freeze's *spec* (the thaw command or the lock
file) through a pipe: the guard keeps it in memory, and no command is ever
read back from a file. The guard:

- in ``lock`` mode takes the application's advisory lock (``fcntl.flock``
  on ``lock_file``, waiting for the application to finish what it holds it
  for) and keeps it -- holding it *is* the freeze;
- creates the *token* file, which says only that the application is frozen
  and by which guard (its pid), and reports ``ready``;
- then watches: when the token vanishes, a thaw claimed it and the guard
  exits (releasing the lock). When the freeze outlives ``freeze_timeout``,
  or the process that froze exits (a crash, a kill, a fail-fast run that
  never reached thaw), the guard claims the token itself and thaws: runs
  the ``thaw`` command, or releases the lock.

Whoever thaws first *claims* the token by renaming it (atomic: exactly one
claimant wins), so the thaw runs once; a thaw command that fails puts the
token back, so that the guard keeps guarding and a retry thaws. A caller of
:func:`thaw` runs the thaw command of *its own* spec (derived from the
operator's plan), never one it read. When the guard thawed while the
process that froze lives on, it leaves ``TOKEN.thawed`` (how and why) for
the thaw hook to consume, so that it knows the freeze did not cover the
children's snapshots, and removes it when that process exits.

Token files live in a private folder (:mod:`._private`) on the machine that
runs the app's hooks, ``0600``, and every one is removed on every way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from typing import Any

from protectflow.errors import CommandError, LocalPluginError
from protectflow.plugins.builtin._commands import command_env, run_command

__all__ = ["FROZEN", "GUARD_MODULE", "alive", "claim", "claimant", "claims", "freeze",
           "read_json", "run_phase", "thaw"]

#: The guard's module, run as ``python -m GUARD_MODULE TOKEN``.
GUARD_MODULE = "protectflow.plugins.builtin.app._guard"
#: What the freezing process tells its guard once the application is frozen.
FROZEN = b"frozen\n"
_POLL = 0.02
_GUARDS: dict[str, subprocess.Popen[bytes]] = {}  # token -> guard started here


def read_json(path: str) -> dict[str, Any] | None:
    """The JSON object in ``path`` (not through a symlink); None if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def claim(token: str) -> str | None:
    """Rename the token to a name only the caller knows; None if gone."""
    claimed = f"{token}.claimed{os.getpid()}-{time.monotonic_ns()}"
    try:
        os.rename(token, claimed)
    except FileNotFoundError:
        return None
    return claimed


def claims(token: str) -> list[str]:
    """The claimed tokens of ``token``: thaws under way (or whose claimant died)."""
    folder, name = os.path.split(token)
    try:
        return [os.path.join(folder, n) for n in os.listdir(folder)
                if n.startswith(name + ".claimed")]
    except FileNotFoundError:
        return []


def claimant(claimed: str) -> int:
    """The pid of the process that holds ``claimed``."""
    try:
        return int(claimed.rsplit(".claimed", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return 0


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) holds no lock
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_guard(pid: int, token: str) -> bool:
    """Whether ``pid`` is alive and is the guard of ``token`` (not a process
    that was given its number since)."""
    proc = _GUARDS.get(token)
    if proc is not None and proc.pid == pid:
        return proc.poll() is None
    if pid <= 0 or not alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return True  # no /proc: trust the number
    return GUARD_MODULE.encode() in argv and os.fsencode(token) in argv


def _env(spec: dict[str, Any], phase: str) -> dict[str, str]:
    return {**spec.get("env", {}), "PROTECTFLOW_PHASE": phase}


def run_phase(spec: dict[str, Any], phase: str) -> None:
    """Run ``spec``'s ``freeze`` or ``thaw`` command.

    Raises
    ------
    CommandError
        If it fails.
    """
    run_command(spec[phase], cwd=spec["cwd"], timeout=spec["command_timeout"],
                env=_env(spec, phase), what=phase)


def freeze(token: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Freeze as ``spec`` says, guarded; safe to call again while frozen.

    ``spec`` holds ``mode`` (``command`` or ``lock``), ``freeze``/``thaw``
    (commands) or ``lock_file``, ``cwd``, ``env``, ``command_timeout`` and
    ``freeze_timeout`` (seconds the freeze may last before the guard thaws
    by itself). The token's folder must be private (:mod:`._private`).

    Returns
    -------
    dict
        ``pid`` (the guard's), ``frozen_at`` and ``deadline``.

    Raises
    ------
    CommandError
        If the freeze command fails (the application is thawed again first).
    LocalPluginError
        If the guard cannot start or the lock cannot be taken in time.
    """
    current = read_json(token)
    if current is not None and _is_guard(int(current.get("pid", 0)), token):
        return {**current, "deadline": current["frozen_at"] + spec["freeze_timeout"]}
    if current is not None or claims(token):  # its guard died: thaw, then freeze afresh
        thaw(token, spec, by="freeze-retry")
    _consume_record(token)  # a stale one, from a freeze that ended long ago
    proc = subprocess.Popen([sys.executable, "-m", GUARD_MODULE, token], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, start_new_session=True,
                            env=command_env({}))  # the guard outlives us: no password
    _GUARDS[token] = proc
    _await_ready(proc, token, spec)
    if spec["mode"] == "command":
        try:
            run_phase(spec, "freeze")
        except CommandError:
            with contextlib.suppress(CommandError):
                thaw(token, spec, by="failed-freeze")
            raise
    frozen_at = time.time()
    _tell(proc, FROZEN)
    return {"pid": proc.pid, "frozen_at": frozen_at,
            "deadline": frozen_at + spec["freeze_timeout"]}


def _tell(proc: subprocess.Popen[bytes], message: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(OSError):  # a guard that is gone has thawed
        proc.stdin.write(message)
        proc.stdin.flush()


def _await_ready(proc: subprocess.Popen[bytes], token: str, spec: dict[str, Any]) -> None:
    assert proc.stdout is not None
    _tell(proc, json.dumps(spec).encode() + b"\n")
    timeout = float(spec["command_timeout"]) + 10  # taking the lock may take that long
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
    proc.stdout.close()
    if line != "ready":
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait()
        _GUARDS.pop(token, None)
        claimed = claim(token)
        if claimed:
            os.unlink(claimed)
        raise LocalPluginError(f"freeze guard failed: {line or 'no answer in time'}")


def thaw(token: str, spec: dict[str, Any], *, by: str) -> dict[str, Any] | None:
    """Thaw the freeze of ``token`` with ``spec``'s thaw, unless someone did;
    ``by`` names the caller.

    Returns
    -------
    dict or None
        The thaw record (``by``, ``reason``, ``ok``, ``at``, and ``now`` if
        this call thawed); None if nothing is frozen under ``token``.

    Raises
    ------
    CommandError
        If the thaw command fails; the application stays guarded, and
        calling again retries it.
    """
    give_up = time.time() + float(spec.get("command_timeout", 60)) + 60
    claimed = claim(token)
    while claimed is None:
        record = _consume_record(token)
        if record is not None:  # the guard thawed
            return record
        if not claims(token) and not os.path.exists(token):
            return None  # never frozen, or thawed and done with
        if time.time() > give_up:
            raise LocalPluginError(f"{spec.get('resource', token)}: another thaw of this "
                                   "application has not finished in time")
        time.sleep(_POLL)  # another claimant is thawing, or put the token back
        claimed = claim(token)
    try:
        _undo(spec, claimed, token)
    except CommandError:
        os.rename(claimed, token)  # still frozen: the guard keeps guarding
        raise
    os.unlink(claimed)
    _consume_record(token)
    proc = _GUARDS.pop(token, None)
    if proc is not None and proc.stdin is not None:
        proc.stdin.close()
    return {"by": by, "reason": by, "ok": True, "at": time.time(), "now": True}


def _consume_record(token: str) -> dict[str, Any] | None:
    """The guard's account of a thaw it did, removed as it is read."""
    record = read_json(token + ".thawed")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(token + ".thawed")
    return record


def _undo(spec: dict[str, Any], claimed: str, token: str) -> None:
    if spec.get("mode") == "command":
        run_phase(spec, "thaw")
        return
    # lock mode: the guard sees the token gone and exits, which releases the lock
    pid = int((read_json(claimed) or {}).get("pid", 0))
    give_up = time.time() + 10
    while _is_guard(pid, token) and time.time() < give_up:
        time.sleep(_POLL)
    if _is_guard(pid, token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)  # its exit closes the lock file: the lock goes with it
