"""Freezing an application so that it is always thawed again.

:func:`freeze` writes a *token* file (what to run to thaw, the deadline) and
starts a guard process (``python -m protectflow.plugins._freeze TOKEN``)
before freezing anything. The guard:

- in ``lock`` mode takes the application's advisory lock (``fcntl.flock``
  on ``lock_file``, waiting for the application to finish what it holds it
  for) and keeps it -- holding it *is* the freeze;
- then watches: when the token vanishes, a thaw hook claimed it and the guard
  exits (releasing the lock). When the deadline passes, or the process that
  froze exits (a crash, a kill, a fail-fast run that never reached thaw),
  the guard claims the token itself and thaws: runs the ``thaw`` command,
  or releases the lock.

Whoever thaws first *claims* the token by renaming it (atomic: exactly one
claimant wins), so the thaw runs once. The outcome is written to
``TOKEN.thawed`` so that a later thaw hook knows whether the application
was thawed early (the freeze then did not cover the children's snapshots).
Token files live in ``state_dir``, local to the machine running the app's
hooks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import subprocess
import sys
import time
from typing import Any

from protectflow.errors import CommandError, LocalPluginError
from protectflow.plugins._commands import run_command

__all__ = ["freeze", "thaw", "thaw_record"]

_POLL = 0.02
_GUARDS: dict[str, subprocess.Popen[bytes]] = {}  # token -> guard started here


def _write_json(path: str, data: dict[str, Any]) -> None:
    temp = f"{path}.tmp{os.getpid()}"
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(temp, path)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
            return data
    except (OSError, ValueError):
        return None


def _claim(token: str) -> str | None:
    """Rename the token to a name only the caller knows; None if gone."""
    claimed = f"{token}.claimed{os.getpid()}-{time.monotonic_ns()}"
    try:
        os.rename(token, claimed)
    except FileNotFoundError:
        return None
    return claimed


def _alive(pid: int, token: str) -> bool:
    proc = _GUARDS.get(token)
    if proc is not None and proc.pid == pid:
        return proc.poll() is None
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


def _env(info: dict[str, Any], phase: str) -> dict[str, str]:
    return {**info.get("env", {}), "PROTECTFLOW_PHASE": phase}


def thaw_record(token: str) -> dict[str, Any] | None:
    """How the freeze of ``token`` ended, if it did."""
    return _read_json(token + ".thawed")


def freeze(token: str, info: dict[str, Any]) -> dict[str, Any]:
    """Freeze as ``info`` says, guarded; safe to call again while frozen.

    ``info`` holds ``mode`` (``command`` or ``lock``), ``freeze``/``thaw``
    (commands) or ``lock_file``, ``cwd``, ``env``, ``command_timeout`` and
    ``freeze_timeout`` (seconds until the guard thaws by itself).

    Returns
    -------
    dict
        The token's contents, with the guard's ``pid``.

    Raises
    ------
    CommandError
        If the freeze command fails (the application is thawed again first).
    LocalPluginError
        If the guard cannot start or the lock cannot be taken in time.
    """
    current = _read_json(token)
    if current is not None and _alive(int(current.get("pid", 0)), token):
        return current  # frozen by an earlier attempt of this hook
    if current is not None:  # its guard died: thaw, then freeze afresh
        thaw(token, by="freeze-retry")
    os.makedirs(os.path.dirname(token), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(token + ".thawed")
    info = {**info, "deadline": time.time() + float(info["freeze_timeout"]),
            "frozen_at": time.time()}
    _write_json(token, info)
    proc = subprocess.Popen([sys.executable, "-m", "protectflow.plugins._freeze", token],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            start_new_session=True)
    _GUARDS[token] = proc
    info["pid"] = proc.pid
    _write_json(token, info)  # the guard reads only the fields it needs, before
    _await_ready(proc, token, float(info["command_timeout"]) + 10)
    if info["mode"] == "command":
        try:
            run_command(info["freeze"], cwd=info["cwd"], timeout=info["command_timeout"],
                        env=_env(info, "freeze"), what="freeze")
        except CommandError:
            with contextlib.suppress(CommandError):
                thaw(token, by="failed-freeze")
            raise
    return info


def _await_ready(proc: subprocess.Popen[bytes], token: str, timeout: float) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
    proc.stdout.close()
    if line != "ready":
        with contextlib.suppress(OSError):
            proc.kill()
        claimed = _claim(token)
        if claimed:
            os.unlink(claimed)
        raise LocalPluginError(f"freeze guard failed: {line or 'no answer in time'}")


def thaw(token: str, *, by: str) -> dict[str, Any] | None:
    """Thaw the freeze of ``token`` unless someone did; ``by`` names the caller.

    Returns
    -------
    dict or None
        The thaw record (``by``, ``reason``, ``ok``, ``at``, and ``now`` if
        this call thawed); None if nothing was ever frozen under ``token``.

    Raises
    ------
    CommandError
        If the thaw command fails; calling again retries it.
    """
    claimed = _claim(token)
    if claimed is None:
        _await_other_thaw(token)
        record = thaw_record(token)
        if record is None or record.get("ok", True):
            return record
        claimed = _claim(token + ".thawed")  # a failed thaw: try it again
        if claimed is None:
            return thaw_record(token)
    info = _read_json(claimed) or {}
    try:
        _undo(info, token)
    except CommandError as err:
        _write_json(token + ".thawed", {**info, "by": by, "ok": False, "at": time.time(),
                                        "error": str(err)})
        raise
    finally:
        os.unlink(claimed)
    record = {"by": by, "ok": True, "at": time.time(), "reason": by}
    _write_json(token + ".thawed", record)
    return {**record, "now": True}


def _await_other_thaw(token: str, seconds: float = 120.0) -> None:
    """Wait while another claimant (the guard) is thawing, for its record."""
    folder, name = os.path.split(token)
    give_up = time.time() + seconds
    while time.time() < give_up and not os.path.exists(token + ".thawed") and any(
            n.startswith(name + ".claimed") for n in os.listdir(folder or ".")):
        time.sleep(_POLL)


def _undo(info: dict[str, Any], token: str) -> None:
    if info.get("mode") == "command":
        run_command(info["thaw"], cwd=info["cwd"], timeout=info["command_timeout"],
                    env=_env(info, "thaw"), what="thaw")
        return
    pid = int(info.get("pid", 0))  # lock mode: the guard sees the token gone and exits
    give_up = time.time() + 10
    while pid and _alive(pid, token) and time.time() < give_up:
        time.sleep(_POLL)
    if pid and _alive(pid, token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)  # its exit closes the lock file: the lock goes with it
    _GUARDS.pop(token, None)


def _take_lock(path: str, timeout: float) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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


def _guard(token: str) -> int:
    parent = os.getppid()
    info = _read_json(token) or {}
    fd = None
    try:
        if info.get("mode") == "lock":
            fd = _take_lock(info["lock_file"], float(info["command_timeout"]))
    except (LocalPluginError, OSError) as err:
        print(f"error: {err}", flush=True)
        return 1
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    while os.path.exists(token):
        if os.getppid() != parent:
            reason = "the process that froze the application exited"
        elif time.time() > float(info["deadline"]):
            reason = f"the freeze outlived its {info['freeze_timeout']} s freeze_timeout"
        else:
            time.sleep(_POLL)
            continue
        claimed = _claim(token)
        if claimed is not None:
            _guard_thaw(token, claimed, info, fd, reason)
        break
    return 0


def _guard_thaw(token: str, claimed: str, info: dict[str, Any], fd: int | None,
                reason: str) -> None:
    record: dict[str, Any] = {**info, "by": "guard", "reason": reason, "ok": True}
    try:
        if fd is not None:
            os.close(fd)
        if info.get("mode") == "command":
            run_command(info["thaw"], cwd=info["cwd"], timeout=info["command_timeout"],
                        env=_env(info, "thaw"), what="thaw")
    except CommandError as err:
        record.update(ok=False, error=str(err))
    record["at"] = time.time()
    _write_json(token + ".thawed", record)
    os.unlink(claimed)


if __name__ == "__main__":
    sys.exit(_guard(sys.argv[1]))
