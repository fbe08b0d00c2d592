"""Helpers the local plugins (fs, sqlite, app) share: paths, schemas, commands.

Paths in a resource's ``extra_info`` may be relative: they resolve against
``extra_info["base_dir"]`` when it is given (the plan loader may set it to
the plan file's folder), else against the current directory.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from protectflow.dag.model import Resource
from protectflow.errors import CommandError, LocalPluginError

__all__ = [
    "bank_of",
    "base_dir",
    "object_schema",
    "resolve_path",
    "restore_destination",
    "run_command",
    "section_of",
]

_SCHEMA = "https://json-schema.org/draft/2020-12/schema"


def object_schema(title: str, properties: Mapping[str, Any],
                  required: Sequence[str] = ()) -> dict[str, Any]:
    """A closed JSON Schema object (unknown parameters are errors)."""
    schema: dict[str, Any] = {
        "$schema": _SCHEMA, "title": title, "type": "object",
        "additionalProperties": False, "properties": dict(properties),
    }
    if required:
        schema["required"] = list(required)
    return schema


def base_dir(resource: Resource) -> str:
    """The folder relative paths of ``resource`` resolve against."""
    base = resource.extra_info.get("base_dir")
    return os.path.abspath(base) if isinstance(base, str) and base else os.getcwd()


def resolve_path(resource: Resource, field: str = "path") -> str:
    """The absolute path in ``extra_info[field]``.

    Raises
    ------
    LocalPluginError
        If the field is missing or not a string.
    """
    value = resource.extra_info.get(field)
    if not isinstance(value, str) or not value:
        raise LocalPluginError(
            f"{resource.key}: extra_info.{field} must be a path; got {value!r} "
            f"(set it in the plan: extra_info: {{{field}: ...}})")
    return os.path.normpath(os.path.join(base_dir(resource), os.path.expanduser(value)))


def bank_of(checkpoint: Any, resource: Resource) -> Any:
    """``checkpoint.bank``, or a clear error when the caller gave no checkpoint."""
    bank = getattr(checkpoint, "bank", None)
    if bank is None:
        raise LocalPluginError(f"{resource.key}: this plugin needs a checkpoint in a bank; "
                               f"got {checkpoint!r}")
    return bank


def section_of(checkpoint: Any, resource: Resource) -> Any:
    """The resource's bank section in ``checkpoint``."""
    bank_of(checkpoint, resource)
    return checkpoint.get_resource_bank_section(resource)


def get_json(section: Any, key: str) -> Any:
    """A JSON object from ``section``, also when a copy stored its text as bytes.

    Raises
    ------
    BankError
        If there is no such object.
    """
    value = section.get_object(key)
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except ValueError as err:
            raise LocalPluginError(f"bank object {key!r} is not JSON: {err}") from err
    return value


def restore_destination(resource: Resource, parameters: Mapping[str, Any]) -> str:
    """``<target>/<resource id>``: where a restore puts the resource.

    Raises
    ------
    LocalPluginError
        If ``target`` is missing or the id is not a plain file name.
    """
    target = parameters.get("target")
    if not isinstance(target, str) or not target:
        raise LocalPluginError(f"{resource.key}: restore needs a 'target' folder parameter")
    name = resource.id
    if name in (".", "..") or "/" in name or "\0" in name or (os.sep in name):
        raise LocalPluginError(f"{resource.key}: the id {name!r} is not a plain file name, "
                               "so it cannot name the restored copy under the target")
    return os.path.join(os.path.abspath(os.path.expanduser(target)), name)


def clear_destination(dest: str, force: bool, what: str) -> None:
    """Refuse a non-empty ``dest`` unless ``force``; with it, remove ``dest``.

    Raises
    ------
    LocalPluginError
        If ``dest`` holds something and ``force`` is false.
    """
    if not os.path.lexists(dest):
        return
    empty_dir = os.path.isdir(dest) and not os.path.islink(dest) and not os.listdir(dest)
    if not (empty_dir or force):
        raise LocalPluginError(f"{what}: restore target {dest} is not empty; choose "
                               "another target or pass force: true to replace it")
    if os.path.isdir(dest) and not os.path.islink(dest):
        shutil.rmtree(dest)
    else:
        os.unlink(dest)


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
                              env={**os.environ, **env}, capture_output=True, text=True,
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
