"""Helpers the local plugins (fs, sqlite, app) share: paths, schemas, the
checkpoint and its chunk store, manifests, restore destinations (commands
are in :mod:`._commands`).

Paths in a resource's ``extra_info`` may be relative: they resolve against
``extra_info["base_dir"]`` when it is given (the plan loader may set it to
the plan file's folder), else against the current directory.

A plugin that stores a resource's data as chunks commits it by writing its
:data:`MANIFEST` (which names the chunks) into the resource's bank section,
after the chunks are durable; delete releases what the manifest names.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from protectflow.bank import BankSection
from protectflow.dag.model import Resource
from protectflow.errors import BankError, BankLockedError, CorruptObjectError, LocalPluginError
from protectflow.plugins.base import (
    HookCheckpoint,
    HookFunction,
    HookOperation,
    Operation,
    ProtectionPlugin,
)
from protectflow.plugins.builtin._chunkfiles import copy_all, release_all
from protectflow.plugins.builtin._chunks import ChunkStore, owner_id
from protectflow.plugins.builtin._target import check_owner, target_problem

__all__ = [
    "ALLOW_OTHER_OWNER",
    "MANIFEST",
    "MainHooksPlugin",
    "base_dir",
    "check_destination",
    "clear_destination",
    "committed_manifest",
    "copy_chunks",
    "destination_problems",
    "get_json",
    "local_name",
    "object_schema",
    "release_chunks",
    "require_checkpoint",
    "resolve_path",
    "restore_destination",
    "rewritten_warnings",
    "source_problems",
    "store_of",
]

#: The object in a resource's bank section that commits what a protect stored.
MANIFEST = "manifest"

_SCHEMA = "https://json-schema.org/draft/2020-12/schema"

#: The restore parameter that lets a target (or a folder on the way to it)
#: be another user's (see :mod:`._target`).
ALLOW_OTHER_OWNER = {
    "type": "boolean", "default": False,
    "description": "restore into a folder another user owns (or below one): that user "
    "could swap what the restore writes, so it is refused unless you trust them; no link "
    "is followed either way"}

#: How to get past a restore target that is not empty, as the command says it.
FORCE_HINT = ("choose another target (--target), or restore with --force (the 'force' "
              "parameter) to replace it")


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


def require_checkpoint(checkpoint: HookCheckpoint | None,
                       resource: Resource) -> HookCheckpoint:
    """``checkpoint``, or a clear error when the caller gave no checkpoint.

    Raises
    ------
    LocalPluginError
        If ``checkpoint`` is not a checkpoint in a bank (a run without one).
    """
    if not isinstance(checkpoint, HookCheckpoint):
        raise LocalPluginError(f"{resource.key}: this plugin needs a checkpoint in a bank; "
                               f"got {checkpoint!r}")
    return checkpoint


def local_name(checkpoint: HookCheckpoint, resource: Resource) -> str:
    """A file name for local state of ``resource`` in ``checkpoint`` (a
    snapshot, a freeze token): the same in every process of the run, another
    for every other checkpoint or resource."""
    return hashlib.sha256(f"{checkpoint.id}\0{resource.key}".encode()).hexdigest()[:32]


def store_of(checkpoint: HookCheckpoint, resource: Resource, *,
             durable: bool = True, check_existing: bool = False) -> ChunkStore:
    """The bank's chunk store, referencing chunks for ``resource`` of
    ``checkpoint`` (``check_existing``: reading back each chunk it dedups onto)."""
    return ChunkStore(checkpoint.bank, owner_id(checkpoint.id, resource.key), durable=durable,
                      check_existing=check_existing)


def rewritten_warnings(store: ChunkStore) -> list[str]:
    """What a protect says of the damaged chunks it stored again."""
    return [f"chunk {digest} was damaged in the bank (a check had found it so, or this "
            "protect read it back); stored again from the source, which repairs every "
            "checkpoint that names it" for digest in store.rewritten]


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


def committed_manifest(section: BankSection, resource: Resource, *,
                  missing: str = "no manifest for it") -> dict[str, Any]:
    """The manifest a protect committed for ``resource`` in ``section``.

    Raises
    ------
    LocalPluginError
        If the checkpoint holds none (``missing`` says what it lacks).
    CorruptObjectError
        If it holds one that fails authentication or does not read: damage,
        never taken for a protect that did not finish.
    BankLockedError
        If the bank's key cannot be had.
    """
    try:
        manifest: dict[str, Any] = get_json(section, MANIFEST)
    except CorruptObjectError as err:
        raise CorruptObjectError(
            f"{resource.key}: the checkpoint's manifest {err.key or MANIFEST!r} is damaged, "
            f"so none of its data can be found: {err}; `protectflow verify` lists what else "
            "is damaged, and a copy of the checkpoint (`copy --to`) or a new protect is "
            "the way back", key=err.key) from err
    except BankLockedError:
        raise
    except BankError:
        raise LocalPluginError(f"{resource.key}: the checkpoint holds {missing}; "
                               "its protect did not finish") from None
    return manifest


def copy_chunks(checkpoint: HookCheckpoint, resource: Resource, digests: list[str],
                kwargs: Mapping[str, Any], *,
                rename: Callable[[object, Mapping[str, str]], dict[str, object]],
                ) -> dict[str, Any]:
    """Give the copy's target checkpoint (``kwargs["target_checkpoint"]``, in
    another bank) the chunks ``digests``, named under the target's key, and
    the resource's manifest with the chunks renamed
    (``rename(manifest's JSON, {old: new})`` gives the JSON to store).

    Each bank names chunks by a hash keyed with its own key, so a chunk's
    name in the source means nothing in the target: the manifest copied
    verbatim would name chunks the target does not hold. The target's
    manifest is always made from the source's, never renamed where it lies,
    so a second call (a retry, a resumed copy) writes the same manifest.

    Raises
    ------
    LocalPluginError
        If there is no target checkpoint, or the source holds no manifest.
    ChunkError
        If a source chunk is missing or corrupt.
    """
    target = kwargs.get("target_checkpoint")
    if not isinstance(target, HookCheckpoint):
        raise LocalPluginError(f"{resource.key}: copy needs a target_checkpoint")
    manifest = committed_manifest(checkpoint.get_resource_bank_section(resource), resource)
    copied, names = copy_all(store_of(checkpoint, resource),
                             store_of(target, resource, durable=False), digests)
    target.get_resource_bank_section(resource).update_object(MANIFEST, rename(manifest, names))
    return {"chunks": len(set(digests)), "copied_chunks": copied}


def release_chunks(store: ChunkStore, section: BankSection,
                   chunks_of: Callable[[Any], list[str]]) -> dict[str, int]:
    """Release the chunks ``chunks_of`` finds in the resource's manifest, or
    without one (its protect died before the commit) every chunk ``store``'s
    owner references; the manifest itself is the caller's to delete, last.
    """
    try:
        digests = chunks_of(get_json(section, MANIFEST))
    except BankError:  # no manifest: found by scanning the refs instead
        digests = store.orphan_refs()
    return {"released": len(set(digests)), "deleted_chunks": release_all(store, digests)}


def in_place_source(resource: Resource, parameters: Mapping[str, Any]) -> str | None:
    """With ``in_place``, the path the resource was protected from (where the
    restore goes back); None when the restore has a ``target`` instead.

    Raises
    ------
    LocalPluginError
        If neither ``target`` nor ``in_place`` is given.
    """
    if parameters.get("in_place"):
        return resolve_path(resource)
    if not parameters.get("target"):
        raise LocalPluginError(f"{resource.key}: a restore needs a 'target' folder (--target "
                               "DIR), or 'in_place' (--in-place) to restore where it was")
    return None


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


def check_destination(dest: str, force: bool, what: str) -> None:
    """Refuse a non-empty ``dest`` now, before any work, unless ``force``
    (which replaces it later); make the folder it goes in.

    Raises
    ------
    LocalPluginError
        If ``dest`` holds something and ``force`` is false.
    """
    if os.path.lexists(dest) and not force:
        clear_destination(dest, False, what)  # refuses unless empty
    os.makedirs(os.path.dirname(dest), exist_ok=True)


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
        raise LocalPluginError(f"{what}: restore target {dest} is not empty; {FORCE_HINT}")
    if os.path.isdir(dest) and not os.path.islink(dest):
        shutil.rmtree(dest)
    else:
        os.unlink(dest)


def source_problems(resource: Resource, kind: str) -> list[str]:
    """Why ``extra_info.path`` of ``resource`` is not the ``kind`` (``folder``
    or ``file``) a protect reads, with the fix: ``extra_info.missing_hint``
    when the plan gives one (how to build the source), else where to set the path."""
    try:
        path = resolve_path(resource)
    except LocalPluginError as err:
        return [str(err)]
    found = os.path.isdir(path) if kind == "folder" else os.path.isfile(path)
    if found:
        return []
    what = "does not exist" if not os.path.lexists(path) else f"is not a {kind}"
    hint = resource.extra_info.get("missing_hint")
    fix = hint if isinstance(hint, str) and hint else (
        f"create it, or set the {kind} in the plan's extra_info.path")
    return [f"{resource.key}: the {kind} {path} {what}; {fix}"]


def destination_problems(resource: Resource, parameters: Mapping[str, Any],
                         restored: Callable[[str], bool], *,
                         dest: str | None = None) -> list[str]:
    """Why a restore of ``resource`` could not write ``dest`` (by default
    ``<target>/<id>``): a target that is not a folder, or a destination that
    holds something (unless ``force``, or ``restored(dest)`` says an earlier
    attempt already restored it there)."""
    try:
        dest = dest or restore_destination(resource, parameters)
    except LocalPluginError as err:
        return [str(err)]
    target = os.path.dirname(dest)
    if os.path.lexists(target) and not os.path.isdir(target):
        return [f"{resource.key}: the restore target {target} is not a folder; "
                "give a folder with --target"]
    refused = target_problem(target, what=resource.key,
                             allow_other_owner=bool(parameters.get("allow_other_owner")))
    if refused is not None:
        return [refused]
    try:
        st = os.lstat(dest)
        if not stat.S_ISLNK(st.st_mode):  # a link there is replaced, never followed
            check_owner(st, dest, what=resource.key,
                        allow_other_owner=bool(parameters.get("allow_other_owner")))
    except FileNotFoundError:
        pass
    except LocalPluginError as err:
        return [str(err)]
    if not os.path.lexists(dest) or parameters.get("force"):
        return []
    if os.path.isdir(dest) and not os.path.islink(dest) and not os.listdir(dest):
        return []
    if restored(dest):
        return []
    return [f"{resource.key}: restore target {dest} is not empty; {FORCE_HINT}"]


class MainHooksPlugin(ProtectionPlugin):
    """A plugin whose restore, verify, copy and delete each run one function
    in ``main``, named in :attr:`main_hooks`."""

    #: Operation -> the function its ``main`` hook runs.
    main_hooks: ClassVar[Mapping[str, HookFunction]] = {}

    def _main(self, operation: str) -> Operation:
        return HookOperation({"main": self.main_hooks[operation]})

    def get_restore_operation(self, resource: Resource) -> Operation:
        return self._main("restore")

    def get_verify_operation(self, resource: Resource) -> Operation:
        return self._main("verify")

    def get_copy_operation(self, resource: Resource) -> Operation:
        return self._main("copy")

    def get_delete_operation(self, resource: Resource) -> Operation:
        return self._main("delete")
