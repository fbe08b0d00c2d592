"""Protect an application consistently: freeze it while its children snapshot.

Resource type ``protectflow::app::Application``, a group: its children (the
folders and databases it writes) are listed in the plan's ``depends_on``, so
the DAG runs every child's ``prepare_finish`` -- where fs and sqlite take
their snapshots -- between this resource's ``prepare_begin`` (freeze) and
``prepare_finish`` (thaw). ``extra_info`` gives either

- ``freeze`` and ``thaw``: commands, each an argv list or a shell string,
  run in ``base_dir`` with ``PROTECTFLOW_CHECKPOINT``,
  ``PROTECTFLOW_RESOURCE`` and ``PROTECTFLOW_PHASE`` set; or
- ``lock_file``: an advisory lock (``fcntl.flock``) the application takes
  around its writes; holding it freezes the application.

No run leaves the application frozen: the freeze starts a guard process
first (:mod:`._freeze`) that thaws by itself when ``freeze_timeout`` passes
or the process that froze exits, and :meth:`AppProtectionPlugin.on_failure`
thaws at once -- the operations layer calls it when a run fails, since a
fail-fast executor never reaches the parent's ``prepare_finish`` after a
child failed. A thaw hook that finds the guard thawed early fails: the
children's snapshots were not all taken while the application was quiet.

The freeze's local state (a token naming the guard) lives in a private
per-user folder (:mod:`._private`): ``extra_info.state_dir`` if given, else
``$XDG_RUNTIME_DIR/protectflow``, else ``<user cache dir>/protectflow/run``;
a folder someone else could change is refused. The thaw command always comes
from the plan, never from that state, and a run leaves none of it behind.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from protectflow.dag.model import Resource
from protectflow.errors import BankError, LocalPluginError
from protectflow.plugins.base import (
    HookArgs,
    HookCheckpoint,
    HookOperation,
    Operation,
    ProtectionPlugin,
)
from protectflow.plugins.builtin._commands import command_argv
from protectflow.plugins.builtin._local import (
    base_dir,
    local_name,
    object_schema,
    require_checkpoint,
    resolve_path,
)
from protectflow.plugins.builtin._private import default_state_dir, private_dir
from protectflow.plugins.builtin.app import _freeze
from protectflow.plugins.builtin.app._record import FreezeRecord, ThawRecord

__all__ = ["APPLICATION", "AppProtectionPlugin"]

APPLICATION = "protectflow::app::Application"
FREEZE_RECORD = "freeze"

OPTIONS_SCHEMA = object_schema("app protect parameters", {
    "freeze_timeout": {"type": "number", "exclusiveMinimum": 0, "default": 600,
                       "description": "seconds after which the guard thaws the application "
                       "by itself (the protect then fails)"},
    "command_timeout": {"type": "number", "exclusiveMinimum": 0, "default": 60,
                        "description": "seconds a freeze or thaw command (or taking the "
                        "lock) may take"},
})
EMPTY_SCHEMA = object_schema("app parameters", {})
SAVED_INFO_SCHEMA = {"type": "object", "properties": {
    "mode": {"enum": ["command", "lock"]}, "frozen_at": {"type": "number"},
    "thawed_at": {"type": "number"}, "thawed_early": {"type": "object"}}}


def _spec(checkpoint: HookCheckpoint, resource: Resource,
          parameters: dict[str, Any]) -> dict[str, Any]:
    """How to freeze and thaw ``resource``: from the operator's plan (its
    ``extra_info``) and parameters, every time -- never from local state."""
    extra = resource.extra_info
    has_commands = "freeze" in extra or "thaw" in extra
    if has_commands == ("lock_file" in extra):
        raise LocalPluginError(f"{resource.key}: extra_info needs either 'freeze' and 'thaw' "
                               "commands or a 'lock_file', not both nor neither")
    spec: dict[str, Any] = {
        "cwd": base_dir(resource),
        "command_timeout": float(parameters.get("command_timeout", 60)),
        "freeze_timeout": float(parameters.get("freeze_timeout", 600)),
        "resource": resource.key,
        "env": {"PROTECTFLOW_CHECKPOINT": str(checkpoint.id), "PROTECTFLOW_RESOURCE": resource.key},
    }
    if has_commands:
        spec.update(mode="command", freeze=command_argv(extra.get("freeze"), resource, "freeze"),
                    thaw=command_argv(extra.get("thaw"), resource, "thaw"))
    else:
        spec.update(mode="lock", lock_file=resolve_path(resource, "lock_file"))
    return spec


def command_problems(resource: Resource) -> list[str]:
    """Why the freeze or thaw command of ``resource`` could not start: bad
    extra_info, or a program that is not on PATH (or, given with a folder,
    not an executable file there)."""
    extra = resource.extra_info
    if ("freeze" in extra or "thaw" in extra) == ("lock_file" in extra):
        return [f"{resource.key}: extra_info needs either 'freeze' and 'thaw' commands or a "
                "'lock_file', not both nor neither"]
    if "lock_file" in extra:
        return []
    cwd = base_dir(resource)
    problems = []
    for field in ("freeze", "thaw"):
        try:
            command = command_argv(extra.get(field), resource, field)
        except LocalPluginError as err:
            problems.append(str(err))
            continue
        try:
            argv = shlex.split(command) if isinstance(command, str) else command
        except ValueError as err:
            problems.append(f"{resource.key}: extra_info.{field} is not a shell command: {err}")
            continue
        if not argv or (isinstance(command, str) and "=" in argv[0]):
            continue  # a shell string starting with VAR=value: the shell finds the program
        program = argv[0]
        if os.sep in program:
            found = os.access(os.path.join(cwd, program), os.X_OK)
        else:
            found = shutil.which(program) is not None
        if not found:
            problems.append(f"{resource.key}: the {field} command's program {program!r} is "
                            f"not {'an executable file' if os.sep in program else 'on PATH'} "
                            f"(run from {cwd}); install it or fix extra_info.{field} "
                            "in the plan")
    return problems


def token_path(checkpoint: HookCheckpoint, resource: Resource) -> str:
    """The local token file of this resource's freeze in ``checkpoint``, in a
    private folder: ``extra_info.state_dir`` if the plan gives one, else the
    user's (:func:`._private.default_state_dir`).

    Raises
    ------
    LocalPluginError
        If the folder is not private (someone else could change it).
    """
    state = resource.extra_info.get("state_dir")
    folder = resolve_path(resource, "state_dir") if state else default_state_dir()
    return os.path.join(private_dir(folder), local_name(checkpoint, resource))


def freeze_app(checkpoint: HookCheckpoint, resource: Resource,
               parameters: dict[str, Any]) -> dict[str, Any]:
    """Freeze the application (guarded); returns when it is quiet.

    Raises
    ------
    CommandError
        If the freeze command fails.
    LocalPluginError
        If the extra_info is wrong or the lock cannot be taken in time.
    """
    spec = _spec(checkpoint, resource, parameters)
    section = checkpoint.get_resource_bank_section(resource)
    info = _freeze.freeze(token_path(checkpoint, resource), spec)
    section.update_object(FREEZE_RECORD, FreezeRecord(
        mode=spec["mode"], frozen_at=info["frozen_at"], guard_pid=info["pid"],
        deadline=info["deadline"]).to_json())
    return {"frozen_at": info["frozen_at"], "mode": spec["mode"]}


def thaw_app(checkpoint: HookCheckpoint, resource: Resource, parameters: dict[str, Any], *,
             by: str = "thaw") -> dict[str, Any] | None:
    """Thaw the application unless it was; returns the thaw record. The thaw
    command is the plan's (``resource``'s), whatever the local state holds.

    Raises
    ------
    CommandError
        If the thaw command fails.
    LocalPluginError
        If the extra_info is wrong or the local state folder is not private.
    """
    return _freeze.thaw(token_path(checkpoint, resource),
                        _spec(checkpoint, resource, parameters), by=by)


# -- the hooks: each takes the call's HookArgs ---------------------------------------
def _freeze_hook(args: HookArgs) -> dict[str, Any]:
    checkpoint = require_checkpoint(args.checkpoint, args.resource)
    return freeze_app(checkpoint, args.resource, args.parameters)


def _thaw_hook(args: HookArgs) -> dict[str, Any]:
    """Thaw the application, and check that the freeze held until now: the
    children's snapshots were all taken while it was quiet."""
    checkpoint, resource = require_checkpoint(args.checkpoint, args.resource), args.resource
    local = thaw_app(checkpoint, resource, args.parameters)
    record = None if local is None else ThawRecord.from_json(local, what=resource.key)
    section = checkpoint.get_resource_bank_section(resource)
    saved = FreezeRecord.from_json(section.get_object(FREEZE_RECORD), what=resource.key) \
        if section.has_object(FREEZE_RECORD) else None
    if record is None and saved is not None:  # no local state left: a rerun of this hook
        record = saved.thawed_early or (  # says what the first did
            ThawRecord(by="thaw", at=saved.thawed_at) if saved.thawed_at is not None else None)
    if record is None or saved is None:
        raise LocalPluginError(f"{resource.key}: it was not frozen (its prepare_begin did "
                               "not run in this checkpoint)")
    if record.by != "thaw":
        if saved.thawed_early is None:
            section.update_object(FREEZE_RECORD,
                                  attrs.evolve(saved, thawed_early=record).to_json())
        raise LocalPluginError(
            f"{resource.key}: the application was thawed before its children's snapshots "
            f"all finished ({record.by}: {record.reason}); they may not be "
            "consistent -- raise freeze_timeout or look for a crashed hook")
    section.update_object(FREEZE_RECORD, attrs.evolve(saved, thawed_at=record.at).to_json())
    return {"thawed_at": record.at, "frozen_seconds": record.at - saved.frozen_at}


def _delete_hook(args: HookArgs) -> None:
    checkpoint = require_checkpoint(args.checkpoint, args.resource)
    section = checkpoint.get_resource_bank_section(args.resource)
    if section.has_object(FREEZE_RECORD):
        section.delete_object(FREEZE_RECORD)
    # Nothing local to remove: a protect leaves no local state behind, and a
    # path read back from the checkpoint is never one to unlink.


class AppProtectOperation(HookOperation):
    """Freeze in prepare_begin, thaw in prepare_finish."""

    #: A freeze ends with the process that froze: a resume freezes again and
    #: snapshots the children again under the new freeze.
    atomic_prepare = True

    def __init__(self) -> None:
        super().__init__({"prepare_begin": _freeze_hook, "prepare_finish": _thaw_hook})


class AppDeleteOperation(HookOperation):
    """Drop the freeze records."""

    def __init__(self) -> None:
        super().__init__({"main": _delete_hook})


class AppProtectionPlugin(ProtectionPlugin):
    """Applications that group folders and databases and can be frozen."""

    supported_resource_types: ClassVar[tuple[str, ...]] = (APPLICATION,)
    command_fields: ClassVar[tuple[str, ...]] = ("freeze", "thaw")
    options_schema = OPTIONS_SCHEMA
    restore_schema = EMPTY_SCHEMA
    verify_schema = EMPTY_SCHEMA
    saved_info_schema = SAVED_INFO_SCHEMA

    def get_protect_operation(self, resource: Resource) -> Operation:
        return AppProtectOperation()

    def get_delete_operation(self, resource: Resource) -> Operation:
        return AppDeleteOperation()

    def preflight(self, operation: str, resource: Resource, parameters: Mapping[str, Any], *,
                  checkpoint: HookCheckpoint | None = None) -> list[str]:
        """A protect needs its freeze and thaw commands."""
        return command_problems(resource) if operation == "protect" else []

    def on_failure(self, checkpoint: HookCheckpoint | None, resource: Resource,
                   context: Any, parameters: dict[str, Any], **kwargs: Any) -> Any:
        """Thaw now if the application is still frozen; a no-op otherwise.

        Call it for every resource of a protect run that did not succeed
        (safe to call for all of them, and more than once).

        Raises
        ------
        CommandError
            If the thaw command fails.
        LocalPluginError
            If there is no checkpoint.
        """
        checkpoint = require_checkpoint(checkpoint, resource)
        try:
            spec = _spec(checkpoint, resource, parameters)
        except LocalPluginError:
            return {"thawed": False}  # no freeze could have begun with this extra_info
        record = _freeze.thaw(token_path(checkpoint, resource), spec, by="on_failure")
        return {"thawed": bool(record and record.get("now"))}

    @classmethod
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        try:
            return FreezeRecord.from_json(metadata_store.get_object(FREEZE_RECORD),
                                          what=resource.key).to_json()
        except BankError:
            return None
