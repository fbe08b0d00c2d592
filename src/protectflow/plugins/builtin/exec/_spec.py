"""The commands of an exec resource, read from its ``extra_info`` (the
operator's plan) and checked, with every problem named and how to fix it.

::

    extra_info:
      cwd: folder            # optional; relative to base_dir
      target: name           # optional; a restore's target is a folder (default) or a name
      timeout: 600           # optional; seconds, for every command
      env: {PGHOST: db}      # optional; plain values, stored in the plan
      env_from: [PGPASSWORD] # optional; names taken from the operator's environment
      protect:
        main: {argv: [pg_dump, -Fc, shop], stdout: store}
      restore:
        main: {argv: [pg_restore, -d, shop2], stdin: stored}
      verify:
        main: {argv: [pg_restore, --list], stdin: stored}
      delete:
        complete: [sh, -c, "echo deleted"]   # a bare argv list is a command too

A command is an argv list; a string runs through ``sh -c`` only with
``shell: true``. ``stdout: store`` (protect only, one hook at most) streams
the command's output into the bank; ``stdin: stored`` (restore and verify)
streams it back into a command.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from typing import Any

import attrs

from protectflow.dag.model import Resource
from protectflow.errors import LocalPluginError
from protectflow.plugins.builtin._commands import WITHHELD
from protectflow.plugins.builtin._local import base_dir

__all__ = ["COMMAND_FIELDS", "HOOKS", "OPERATIONS", "Command", "ExecSpec", "read_spec"]

OPERATIONS = ("protect", "restore", "verify", "delete")
HOOKS = ("prepare_begin", "prepare_finish", "main", "complete")
#: The extra_info fields a resumed protect takes from the operator's plan only.
COMMAND_FIELDS = (*OPERATIONS, "env", "env_from", "cwd", "timeout", "target")
_TOP = {*OPERATIONS, "env", "env_from", "cwd", "timeout", "target", "base_dir", "missing_hint"}
_KEYS = {"argv", "shell", "stdout", "stdin", "timeout"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@attrs.frozen(kw_only=True)
class Command:
    """One hook's command."""

    argv: tuple[str, ...] | str
    stdout: str = "discard"  # or "store"
    stdin: str = "none"      # or "stored"
    timeout: float | None = None

    @property
    def shown(self) -> str:
        """The command as the messages show it."""
        return self.argv if isinstance(self.argv, str) else shlex.join(self.argv)


@attrs.frozen(kw_only=True)
class ExecSpec:
    """Every command of a resource, and how they run."""

    commands: Mapping[tuple[str, str], Command]
    cwd: str
    timeout: float | None
    env: Mapping[str, str]
    env_from: tuple[str, ...]
    #: What a restore's ``target`` is: a ``folder`` (made absolute, created
    #: if missing) or a ``name`` (a database's, passed as given).
    target: str = "folder"

    def command(self, operation: str, hook: str) -> Command | None:
        """The command of ``hook`` in ``operation``, if the plan gives one."""
        return self.commands.get((operation, hook))

    def hooks(self, operation: str) -> list[str]:
        """The hooks of ``operation`` that run a command."""
        return [h for h in HOOKS if (operation, h) in self.commands]

    def store_hook(self) -> str | None:
        """The protect hook whose standard output is stored, if any."""
        return next((h for (op, h), c in self.commands.items()
                     if op == "protect" and c.stdout == "store"), None)


def read_spec(resource: Resource) -> ExecSpec:
    """The commands ``resource``'s extra_info gives.

    Raises
    ------
    LocalPluginError
        Naming every problem: an unknown field, a command that is not an
        argv list (or a string without ``shell: true``), a bad stream mode,
        a variable name that is not one, a secret given as a plain value.
    """
    problems: list[str] = []
    extra = resource.extra_info
    key = resource.key
    for name in sorted(set(extra) - _TOP):
        problems.append(f"extra_info.{name} is not an exec field (known: "
                        f"{', '.join(sorted(_TOP))})")
    timeout = _timeout(extra.get("timeout"), "extra_info.timeout", problems)
    env: dict[str, str] = {}
    raw_env = extra.get("env", {})
    if not isinstance(raw_env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw_env.items()):
        problems.append("extra_info.env must map variable names to strings")
    else:
        for name, value in raw_env.items():
            if not _NAME.fullmatch(name):
                problems.append(f"extra_info.env: {name!r} is not a variable name")
            elif name in WITHHELD:
                problems.append(f"extra_info.env: {name} is protectflow's own secret; it is "
                                "never passed to a command")
            elif _secret_like(name):
                problems.append(f"extra_info.env: {name} looks like a secret, and the plan is "
                                f"stored in the bank; set it in your environment and list "
                                f"it in extra_info.env_from instead")
            else:
                env[name] = value
    raw_from = extra.get("env_from", [])
    env_from: list[str] = []
    if not isinstance(raw_from, list) or not all(isinstance(n, str) for n in raw_from):
        problems.append("extra_info.env_from must be a list of variable names")
    else:
        for name in raw_from:
            if not _NAME.fullmatch(name):
                problems.append(f"extra_info.env_from: {name!r} is not a variable name")
            elif name in WITHHELD:
                problems.append(f"extra_info.env_from: {name} is protectflow's own secret; "
                                "it is never passed to a command")
            else:
                env_from.append(name)
    commands: dict[tuple[str, str], Command] = {}
    for operation in OPERATIONS:
        hooks = extra.get(operation)
        if hooks is None:
            continue
        if not isinstance(hooks, Mapping):
            problems.append(f"extra_info.{operation} must map hooks ({', '.join(HOOKS)}) "
                            f"to commands; got {hooks!r}")
            continue
        for hook, raw in hooks.items():
            where = f"extra_info.{operation}.{hook}"
            if hook not in HOOKS:
                problems.append(f"{where}: {hook!r} is not a hook (one of {', '.join(HOOKS)})")
                continue
            command = _command(raw, where, operation, problems)
            if command is not None:
                commands[(operation, hook)] = command
    stored = [h for (op, h), c in commands.items() if op == "protect" and c.stdout == "store"]
    if len(stored) > 1:
        problems.append(f"extra_info.protect: only one hook may store its stdout; "
                        f"{', '.join(stored)} do")
    if any(c.stdin == "stored" for c in commands.values()) and not stored:
        problems.append("a command reads 'stdin: stored' but no protect hook has "
                        "'stdout: store'")
    cwd = base_dir(resource)
    raw_cwd = extra.get("cwd")
    if raw_cwd is not None:
        if not isinstance(raw_cwd, str) or not raw_cwd:
            problems.append(f"extra_info.cwd must be a folder; got {raw_cwd!r}")
        else:
            cwd = os.path.normpath(os.path.join(cwd, os.path.expanduser(raw_cwd)))
    target = extra.get("target", "folder")
    if target not in ("folder", "name"):
        problems.append(f"extra_info.target must be 'folder' (a restore's --target is a "
                        f"folder) or 'name' (a database name, passed as given); got {target!r}")
    if problems:
        raise LocalPluginError(f"{key}: the exec commands in the plan are not valid:\n  "
                               + "\n  ".join(problems)
                               + "\n(see README: The exec plugin)")
    return ExecSpec(commands=commands, cwd=cwd, timeout=timeout, env=env,
                    env_from=tuple(env_from), target=str(target))


def _secret_like(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in ("PASSWORD", "PASSWD", "SECRET", "TOKEN"))


def _timeout(value: Any, where: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        problems.append(f"{where} must be a number of seconds above 0; got {value!r}")
        return None
    return float(value)


def _command(raw: Any, where: str, operation: str, problems: list[str]) -> Command | None:
    if isinstance(raw, list):
        raw = {"argv": raw}
    if isinstance(raw, str):
        problems.append(f"{where}: {raw!r} is a string; give an argv list ([program, arg, "
                        "...]), or {argv: '...', shell: true} to run it with sh -c")
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{where} must be an argv list or {{argv: [...], ...}}; got {raw!r}")
        return None
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(map(str, unknown))} (known: "
                        f"{', '.join(sorted(_KEYS))})")
    argv = raw.get("argv")
    shell = raw.get("shell", False)
    if not isinstance(shell, bool):
        problems.append(f"{where}.shell must be true or false")
        return None
    parsed: tuple[str, ...] | str
    if shell:
        if not isinstance(argv, str) or not argv.strip():
            problems.append(f"{where}.argv must be a shell string when shell is true")
            return None
        parsed = argv
    elif isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv) and argv[0]:
        parsed = tuple(argv)
    elif isinstance(argv, str):
        problems.append(f"{where}.argv is a string; give a list, or add shell: true to run "
                        "it with sh -c")
        return None
    else:
        problems.append(f"{where}.argv must be a non-empty list of strings; got {argv!r}")
        return None
    stdout = raw.get("stdout", "discard")
    stdin = raw.get("stdin", "none")
    if stdout not in ("discard", "store"):
        problems.append(f"{where}.stdout must be 'store' or 'discard'; got {stdout!r}")
    elif stdout == "store" and operation != "protect":
        problems.append(f"{where}: only a protect hook can store its stdout")
    if stdin not in ("none", "stored"):
        problems.append(f"{where}.stdin must be 'stored' or 'none'; got {stdin!r}")
    elif stdin == "stored" and operation not in ("restore", "verify"):
        problems.append(f"{where}: only a restore or verify hook can read the stored stream")
    timeout = _timeout(raw.get("timeout"), f"{where}.timeout", problems)
    return Command(argv=parsed, stdout=str(stdout), stdin=str(stdin), timeout=timeout)
