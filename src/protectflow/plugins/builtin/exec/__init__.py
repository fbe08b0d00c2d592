"""Protect anything a command can dump and load: the exec plugin.

Resource type ``protectflow::exec::Command``. Its ``extra_info`` (the
operator's plan; see :mod:`._spec` for the fields) gives, per operation
(protect, restore, verify, delete) and hook (prepare_begin, prepare_finish,
main, complete), a command: an argv list, or a shell string only with
``shell: true``.

- A command's exit code is its hook's result; a failure's reason names the
  command and shows the tail of its stderr (:mod:`._run`). Each command has
  a timeout (``timeout``: the command's, else extra_info's, else the
  ``timeout`` parameter); when it passes, the command's process group is
  killed and the reason says so.
- Its environment is the harmless part of the operator's (``PATH``,
  ``HOME``, ``LANG``, ``LC_*`` ...), the variables ``env_from`` names, taken
  from the operator's environment when it runs (secrets such as
  ``PGPASSWORD``: never written to the plan, the bank or a report; their
  values are masked in the stderr tails), the plan's ``env``, and:

  ``PROTECTFLOW_CHECKPOINT_ID``, ``PROTECTFLOW_OPERATION``,
  ``PROTECTFLOW_HOOK``, ``PROTECTFLOW_RESOURCE_TYPE``,
  ``PROTECTFLOW_RESOURCE_ID``, ``PROTECTFLOW_RESOURCE_NAME``,
  ``PROTECTFLOW_RESOURCE_EXTRA_INFO`` (JSON), ``PROTECTFLOW_RESTORE_TARGET``
  (a restore's ``target`` parameter, when given), ``PROTECTFLOW_STREAM_SIZE``
  and ``PROTECTFLOW_STREAM_SHA256`` (restore, verify: the stored stream's).

  protectflow's own secrets (``PROTECTFLOW_PASSWORD`` ...) are never passed.
- ``stdout: store`` on one protect hook streams its standard output into the
  bank's chunk store: content-defined chunks (:mod:`._cdc`; a second dump
  that changed little adds little), deduplicated and encrypted, in constant
  memory; a :class:`~._record.StreamManifest` records it once the command
  succeeded.
- ``stdin: stored`` on a restore or verify hook streams the stored bytes
  into the command, each chunk authenticated, the size and SHA-256 checked
  at the end (the command is killed before its input ends if they differ).
- **verify** always reads the stored stream back (chunks present and
  authentic, size and hash), and pipes it to its ``main`` command if one
  reads ``stdin: stored`` (``pg_restore --list``, ``tar -t``).
- **copy** and **delete** handle the chunks as the fs plugin does; a
  delete's commands run before its chunks are released.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, ClassVar

from protectflow.bank.chunks.refs import manifest_names
from protectflow.dag.model import Resource
from protectflow.dag.outcomes import STATS_KEY, ResourceStats
from protectflow.errors import BankError, ChunkError, LocalPluginError
from protectflow.plugins.base import (
    HookArgs,
    HookCheckpoint,
    HookFunction,
    HookOperation,
    Operation,
    ProtectionPlugin,
)
from protectflow.plugins.builtin._local import (
    MANIFEST,
    copy_chunks,
    get_json,
    object_schema,
    release_chunks,
    require_checkpoint,
    rewritten_warnings,
    store_of,
)
from protectflow.plugins.builtin.exec import _cdc
from protectflow.plugins.builtin.exec._record import StreamManifest
from protectflow.plugins.builtin.exec._run import base_env, run
from protectflow.plugins.builtin.exec._spec import COMMAND_FIELDS, ExecSpec, read_spec
from protectflow.plugins.contents import Item

__all__ = ["COMMAND", "ExecProtectionPlugin", "read_stream_manifest"]

COMMAND = "protectflow::exec::Command"
DEFAULT_TIMEOUT = 3600.0

OPTIONS_SCHEMA = object_schema("exec protect parameters", {
    "timeout": {"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_TIMEOUT,
                "description": "seconds a command may run (unless the plan gives its own); "
                "then its process group is killed"},
    "min_chunk": {"type": "integer", "minimum": 4096, "maximum": 16 << 20,
                  "default": _cdc.DEFAULT_MIN,
                  "description": "smallest chunk of a stored stream, in bytes"},
    "max_chunk": {"type": "integer", "minimum": 65536, "maximum": 64 << 20,
                  "default": _cdc.DEFAULT_MAX,
                  "description": "largest chunk of a stored stream, in bytes"},
})
RESTORE_SCHEMA = object_schema("exec restore parameters", {
    "target": {"type": "string", "minLength": 1,
               "description": "where to restore: given to the commands as "
               "$PROTECTFLOW_RESTORE_TARGET (a folder is made if missing)"},
    "force": {"type": "boolean", "default": False,
              "description": "given to the commands as $PROTECTFLOW_RESTORE_FORCE=1"},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_TIMEOUT,
                "description": "seconds a command may run (unless the plan gives its own)"},
    "allow_other_owner": {"type": "boolean", "default": False,
                          "description": "accepted for symmetry with the other plugins"},
})
VERIFY_SCHEMA = object_schema("exec verify parameters", {
    "timeout": {"type": "number", "exclusiveMinimum": 0, "default": DEFAULT_TIMEOUT,
                "description": "seconds a command may run (unless the plan gives its own)"},
})
SAVED_INFO_SCHEMA = {"type": "object", "properties": {
    "hook": {"type": "string"}, "size": {"type": "integer"}, "sha256": {"type": "string"},
    "taken_at": {"type": "number"}}}


def read_stream_manifest(checkpoint: HookCheckpoint, resource: Resource) -> StreamManifest:
    """The stream a protect stored for ``resource`` in ``checkpoint``.

    Raises
    ------
    LocalPluginError
        If the checkpoint holds none (no hook stores its stdout, or the
        protect did not finish), or it is not valid.
    """
    section = checkpoint.get_resource_bank_section(resource)
    try:
        data = get_json(section, MANIFEST)
    except LocalPluginError:
        raise
    except BankError:
        raise LocalPluginError(f"{resource.key}: the checkpoint holds no stored stream (no "
                               "protect hook has 'stdout: store', or its protect did not "
                               "finish)") from None
    return StreamManifest.from_json(data, what=resource.key)


def _env(args: HookArgs, checkpoint: HookCheckpoint, spec: ExecSpec, operation: str,
         manifest: StreamManifest | None) -> tuple[dict[str, str], list[str]]:
    """The command's environment and the secret values to mask in its output.

    Raises
    ------
    LocalPluginError
        If a variable ``env_from`` names is not set.
    """
    missing = [name for name in spec.env_from if name not in os.environ]
    if missing:
        raise LocalPluginError(
            f"{args.resource.key}: {', '.join(missing)} not set in your environment "
            "(extra_info.env_from names it); export it before running protectflow")
    resource = args.resource
    own = {"PROTECTFLOW_CHECKPOINT_ID": str(checkpoint.id),
           "PROTECTFLOW_OPERATION": operation, "PROTECTFLOW_HOOK": args.hook,
           "PROTECTFLOW_RESOURCE_TYPE": resource.type, "PROTECTFLOW_RESOURCE_ID": resource.id,
           "PROTECTFLOW_RESOURCE_NAME": resource.name or "",
           "PROTECTFLOW_RESOURCE_EXTRA_INFO": json.dumps(dict(resource.extra_info),
                                                         sort_keys=True, default=str)}
    target = args.parameters.get("target")
    if operation == "restore" and isinstance(target, str) and target:
        own["PROTECTFLOW_RESTORE_TARGET"] = _target(spec, target)
        own["PROTECTFLOW_RESTORE_FORCE"] = "1" if args.parameters.get("force") else "0"
    if manifest is not None:
        own["PROTECTFLOW_STREAM_SIZE"] = str(manifest.size)
        own["PROTECTFLOW_STREAM_SHA256"] = manifest.sha256
    return (base_env(spec.env, spec.env_from, own),
            [os.environ[name] for name in spec.env_from])


def _target(spec: ExecSpec, target: str) -> str:
    """A restore's target as the commands get it: a folder made absolute, or
    a name (``extra_info.target: name``) as given."""
    return target if spec.target == "name" else os.path.abspath(os.path.expanduser(target))


def _timeout(spec: ExecSpec, timeout: float | None, parameters: Mapping[str, Any]) -> float:
    return timeout or spec.timeout or float(parameters.get("timeout", DEFAULT_TIMEOUT))


def _what(args: HookArgs, operation: str) -> str:
    return f"{args.resource.key} {operation}.{args.hook}"


def _feeder(checkpoint: HookCheckpoint, resource: Resource, manifest: StreamManifest,
            counted: dict[str, int]) -> Callable[[IO[bytes]], None]:
    """Writes the stored stream, each chunk authenticated and its length,
    then the whole's size and SHA-256, checked."""
    store = store_of(checkpoint, resource)

    def feed(out: IO[bytes]) -> None:
        digest = hashlib.sha256()
        for name, length in zip(manifest.chunks, manifest.lengths, strict=True):
            data = store.read(name, rehash=True)
            if len(data) != length:
                raise ChunkError(f"{resource.key}: chunk {name} holds {len(data)} bytes, the "
                                 f"stream manifest says {length}")
            digest.update(data)
            counted["bytes"] += len(data)
            counted["chunks"] += 1
            out.write(data)
        if digest.hexdigest() != manifest.sha256:
            raise ChunkError(f"{resource.key}: the stored stream's SHA-256 is "
                             f"{digest.hexdigest()}, its manifest says {manifest.sha256}")
        out.flush()
    return feed


def _stream_problems(checkpoint: HookCheckpoint, resource: Resource,
                     manifest: StreamManifest) -> dict[str, int]:
    """Read the stored stream back, checking everything; returns the counts.

    Raises
    ------
    ChunkError
        If a chunk is missing, corrupt or of the wrong length, or the whole's
        size or hash is not the manifest's.
    """
    counted = {"bytes": 0, "chunks": 0}

    class _Sink:
        def write(self, data: bytes) -> int:
            return len(data)

        def flush(self) -> None:
            pass

    _feeder(checkpoint, resource, manifest, counted)(_Sink())  # type: ignore[arg-type]
    return counted


def _hook(operation: str) -> HookFunction:
    """The function running ``operation``'s command of the hook it is called for."""
    def hook(args: HookArgs) -> dict[str, Any]:
        checkpoint = require_checkpoint(args.checkpoint, args.resource)
        spec = read_spec(args.resource)
        command = spec.command(operation, args.hook)
        out: dict[str, Any] = {}
        manifest = None
        if operation in ("restore", "verify") and spec.store_hook() is not None:
            manifest = read_stream_manifest(checkpoint, args.resource)
        if operation == "restore":
            target = args.parameters.get("target")
            if (isinstance(target, str) and target and command is not None
                    and spec.target == "folder"):
                os.makedirs(_target(spec, target), exist_ok=True)
        if command is None:  # verify's main without a command: the stream check alone
            if operation == "verify" and manifest is not None:
                counted = _stream_problems(checkpoint, args.resource, manifest)
                out.update(checked_bytes=counted["bytes"], checked_chunks=counted["chunks"])
            elif operation == "delete" and args.hook == "main":
                out.update(_release(checkpoint, args.resource))
            return out
        env, secrets = _env(args, checkpoint, spec, operation, manifest)
        timeout = _timeout(spec, command.timeout, args.parameters)
        what = _what(args, operation)
        if command.stdout == "store":
            return _store_stream(args, checkpoint, spec, command.argv, env, secrets, timeout)
        produce = None
        counted = {"bytes": 0, "chunks": 0}
        if command.stdin == "stored":
            assert manifest is not None
            produce = _feeder(checkpoint, args.resource, manifest, counted)
        elif operation == "verify" and args.hook == "main" and manifest is not None:
            counted = _stream_problems(checkpoint, args.resource, manifest)
        outcome = run(command.argv, cwd=spec.cwd, env=env, timeout=timeout, what=what,
                      secrets=secrets, produce=produce)
        out.update(outcome.to_json())
        if produce is not None or counted["chunks"]:
            out.update(stream_bytes=counted["bytes"], stream_chunks=counted["chunks"])
        if operation == "restore" and args.hook == "main":
            target = args.parameters.get("target")
            if isinstance(target, str) and target:
                args.publish(_target(spec, target))
        if operation == "delete" and args.hook == "main":
            out.update(_release(checkpoint, args.resource))
        return out
    return hook


def _store_stream(args: HookArgs, checkpoint: HookCheckpoint, spec: ExecSpec,
                  argv: tuple[str, ...] | str, env: Mapping[str, str], secrets: list[str],
                  timeout: float) -> dict[str, Any]:
    """Run the protect command whose stdout is stored; commit its manifest."""
    resource = args.resource
    store = store_of(checkpoint, resource, durable=False)  # one sync before the manifest
    min_size = int(args.parameters.get("min_chunk", _cdc.DEFAULT_MIN))
    max_size = max(int(args.parameters.get("max_chunk", _cdc.DEFAULT_MAX)), min_size)
    digests: list[str] = []
    lengths: list[int] = []
    whole = hashlib.sha256()
    new = [0]

    def consume(stream: IO[bytes]) -> None:
        """Chunk the stream and store each chunk as it comes: one chunk (at
        most ``max_chunk`` bytes) and the chunker's buffer held at a time,
        whatever the stream's size. (Storing on worker threads was a fifth
        faster, but its peak memory varied with the threads' timing.)"""
        for chunk in _cdc.chunks(stream, min_size=min_size, max_size=max_size):
            name = store.chunk_id(chunk)
            whole.update(chunk)
            digests.append(name)
            lengths.append(len(chunk))
            new[0] += store.add(name, chunk)

    outcome = run(argv, cwd=spec.cwd, env=env, timeout=timeout,
                  what=_what(args, "protect"), secrets=secrets, consume=consume)
    store.sync()
    size = sum(lengths)
    manifest = StreamManifest(hook=args.hook, size=size, sha256=whole.hexdigest(),
                              chunks=tuple(digests), lengths=tuple(lengths),
                              taken_at=time.time())
    checkpoint.get_resource_bank_section(resource).update_object(MANIFEST, manifest.to_json())
    kind = "new" if new[0] and new[0] == len(digests) else "unmodified" if not new[0] \
        else "changed"
    stats = ResourceStats(**{f"files_{kind}": 1, f"bytes_{kind}": size},
                          bytes_read=size, bytes_added=store.added_bytes)
    out = {**outcome.to_json(), "bytes": size, "chunks": len(digests), "new_chunks": new[0],
           "sha256": manifest.sha256, STATS_KEY: stats.to_json()}
    warnings = rewritten_warnings(store)
    if warnings:
        out["warnings"] = warnings
    return out


def _chunks_of(manifest: object) -> list[str]:
    try:
        return list(StreamManifest.from_json(manifest, what="manifest").chunks)
    except LocalPluginError:
        return list(manifest_names(manifest))


def _release(checkpoint: HookCheckpoint, resource: Resource) -> dict[str, Any]:
    section = checkpoint.get_resource_bank_section(resource)
    out = release_chunks(store_of(checkpoint, resource), section, _chunks_of)
    with contextlib.suppress(BankError):
        section.delete_object(MANIFEST)
    return out


def _rename_chunks(manifest: object, names: Mapping[str, str]) -> dict[str, object]:
    return StreamManifest.from_json(manifest, what="manifest").renamed(names).to_json()


def _copy_main(args: HookArgs) -> dict[str, Any]:
    checkpoint = require_checkpoint(args.checkpoint, args.resource)
    if read_spec(args.resource).store_hook() is None:
        return {"chunks": 0}
    chunks = list(read_stream_manifest(checkpoint, args.resource).chunks)
    return copy_chunks(checkpoint, args.resource, chunks, args.kwargs, rename=_rename_chunks)


class ExecProtectionPlugin(ProtectionPlugin):
    """Anything a command dumps to stdout and loads from stdin."""

    supported_resource_types: ClassVar[tuple[str, ...]] = (COMMAND,)
    command_fields: ClassVar[tuple[str, ...]] = COMMAND_FIELDS
    options_schema = OPTIONS_SCHEMA
    restore_schema = RESTORE_SCHEMA
    verify_schema = VERIFY_SCHEMA
    saved_info_schema = SAVED_INFO_SCHEMA

    def _operation(self, resource: Resource, operation: str,
                   always: tuple[str, ...] = ()) -> Operation:
        spec = read_spec(resource)
        hooks = set(spec.hooks(operation)) | set(always)
        function = _hook(operation)
        return HookOperation({hook: function for hook in sorted(hooks)})

    def get_protect_operation(self, resource: Resource) -> Operation:
        return self._operation(resource, "protect")

    def get_restore_operation(self, resource: Resource) -> Operation:
        return self._operation(resource, "restore")

    def get_verify_operation(self, resource: Resource) -> Operation:
        return self._operation(resource, "verify", ("main",))

    def get_copy_operation(self, resource: Resource) -> Operation:
        return HookOperation({"main": _copy_main})

    def get_delete_operation(self, resource: Resource) -> Operation:
        return self._operation(resource, "delete", ("main",))

    def preflight(self, operation: str, resource: Resource, parameters: Mapping[str, Any], *,
                  checkpoint: HookCheckpoint | None = None) -> list[str]:
        """The plan's commands must be valid, and their programs and the
        ``env_from`` variables there."""
        try:
            spec = read_spec(resource)
        except LocalPluginError as err:
            return [str(err)]
        problems = [f"{resource.key}: {name} is not set in your environment "
                    "(extra_info.env_from names it); export it before running protectflow"
                    for name in spec.env_from if name not in os.environ]
        for hook in spec.hooks(operation):
            command = spec.command(operation, hook)
            if command is None or isinstance(command.argv, str):
                continue
            program = command.argv[0]
            found = (os.access(os.path.join(spec.cwd, program), os.X_OK) if os.sep in program
                     else shutil.which(program) is not None)
            if not found:
                problems.append(f"{resource.key}: the {operation}.{hook} command's program "
                                f"{program!r} is not found (run from {spec.cwd}); install it "
                                "or fix the plan")
        if not os.path.isdir(spec.cwd) and spec.hooks(operation):
            problems.append(f"{resource.key}: the commands' folder {spec.cwd} does not exist; "
                            "create it or fix extra_info.cwd")
        return problems

    @classmethod
    def get_contents(cls, metadata_store: Any, resource: Resource) -> list[Item]:
        """The stored stream (``ls``'s one item): its size, when it was
        taken, the hook it came from and its SHA-256; none when no protect
        hook stores its stdout."""
        try:
            data = get_json(metadata_store, MANIFEST)
        except LocalPluginError:
            raise
        except BankError:
            return []
        manifest = StreamManifest.from_json(data, what=resource.key)
        return [Item(f"{manifest.hook}.stdout", "stream", size=manifest.size,
                     mtime_ns=int(manifest.taken_at * 1e9),
                     content="chunks:" + ",".join(manifest.chunks),
                     info={"hook": manifest.hook, "sha256": manifest.sha256})]

    @classmethod
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        try:
            manifest = StreamManifest.from_json(get_json(metadata_store, MANIFEST),
                                                what=resource.key)
        except BankError:
            return None
        return {"hook": manifest.hook, "size": manifest.size, "sha256": manifest.sha256,
                "taken_at": manifest.taken_at}
