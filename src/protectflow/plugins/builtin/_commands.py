"""Running the commands a resource names (an application's freeze and thaw).

Apart from the local plugins' other helpers (:mod:`._local`) because the
freeze guard, a process of its own, imports it: it needs no bank.

A command gets protectflow's environment without the bank's password
(:data:`WITHHELD`): ``$PROTECTFLOW_PASSWORD``, the new password of ``key
add-password``, and ``$PROTECTFLOW_PASSWORD_FILE`` too -- only a path, but
one to the password, which a freeze command has no business reading. A
variable the resource's own ``env`` sets is passed as the plan says.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from typing import Any

from protectflow.dag.model import Resource
from protectflow.errors import CommandError, LocalPluginError

__all__ = ["WITHHELD", "command_argv", "command_env", "run_command"]

#: Variables of protectflow's environment a command does not inherit.
WITHHELD = frozenset({"PROTECTFLOW_PASSWORD", "PROTECTFLOW_NEW_PASSWORD",
                      "PROTECTFLOW_PASSWORD_FILE"})


def command_argv(command: Any, resource: Resource, field: str) -> list[str] | str:
    """An argv list, or a shell string, from ``extra_info[field]``.

    Raises
    ------
    LocalPluginError
        If it is neither a non-empty string nor a list of strings.
    """
    if isinstance(command, str) and command.strip():
        return command
    if (isinstance(command, list) and command
            and all(isinstance(part, str) for part in command)):
        return list(command)
    raise LocalPluginError(f"{resource.key}: extra_info.{field} must be a command: a shell "
                           f"string or a list of strings; got {command!r}")


def command_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a command: this process's, less :data:`WITHHELD`,
    plus ``env`` (the resource's own)."""
    inherited = {k: v for k, v in os.environ.items() if k not in WITHHELD}
    return {**inherited, **env}


def run_command(command: list[str] | str, *, cwd: str, timeout: float,
                env: Mapping[str, str], what: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (argv list, or a string for ``sh -c``) and check it.

    Raises
    ------
    CommandError
        If it cannot start, exits non-zero or overruns ``timeout``; the
        message names the command, its exit code and the tail of its stderr.
    """
    shown = command if isinstance(command, str) else shlex.join(command)
    try:
        done = subprocess.run(command, shell=isinstance(command, str), cwd=cwd,
                              env=command_env(env), capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        tail = _tail(err.stderr)
        raise CommandError(f"{what} command {shown!r} did not finish in {timeout} s"
                           f"{tail}", None, str(err.stderr or "")) from err
    except OSError as err:
        raise CommandError(f"{what} command {shown!r} could not start in {cwd}: {err}",
                           None, "") from err
    if done.returncode != 0:
        raise CommandError(f"{what} command {shown!r} failed with exit code "
                           f"{done.returncode}{_tail(done.stderr)}",
                           done.returncode, done.stderr)
    return done


def _tail(stderr: str | bytes | None, lines: int = 10) -> str:
    if not stderr:
        return " (no stderr)"
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    return "; stderr ends:\n" + "\n".join(text.rstrip().splitlines()[-lines:])
