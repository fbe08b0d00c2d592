"""The installed plugins, each hook noting in a file that it started and that
it ended: what ran, known without reading any journal (the crash tests'
oracle for "no recorded success runs again").

The file is named by ``$PF_TEST_HOOK_RECORDS``; each note is one line of JSON
(``pid``, ``node``, ``event``: start or end, ``attempt``) appended in one
``write`` to a file opened with ``O_APPEND``, so lines stay whole from any
thread or process, and a SIGKILL loses none that was written. Importable
where hooks run: the crash tests put the repository on ``PYTHONPATH`` and
name the registry ``tests.crash.recording_plugins:registry``.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from protectflow.dag.model import Resource
from protectflow.plugins import Operation, ProtectionPlugin, Registry
from protectflow.plugins.contract import get_operation, implemented_hooks

SPEC = "tests.crash.recording_plugins:registry"
RECORDS = "PF_TEST_HOOK_RECORDS"

_lock = threading.Lock()
_started: dict[str, threading.Event] = {}


def started(node: str) -> threading.Event:
    """Set once ``node``'s hook started in this process."""
    with _lock:
        return _started.setdefault(node, threading.Event())


def note(node: str, event: str, attempt: int) -> None:
    path = os.environ.get(RECORDS)
    if not path:
        return
    line = json.dumps({"pid": os.getpid(), "node": node, "event": event,
                       "attempt": attempt}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    if event == "start":
        started(node).set()


class RecordingOperation(Operation):
    """``inner``'s hooks, each noted as it starts and as it ends well."""

    def __init__(self, inner: Operation) -> None:
        self.inner = inner
        # What the executors and a resume read from an Operation.
        self.retries = inner.retries  # type: ignore[misc]
        self.retry_delay = inner.retry_delay  # type: ignore[misc]
        self.timeout = inner.timeout  # type: ignore[misc]
        self.atomic_prepare = inner.atomic_prepare  # type: ignore[misc]
        # The same hooks as inner's, so the compiled DAG is the uninstrumented one.
        self.declared_hooks = frozenset(implemented_hooks(inner))

    def _hook(self, hook: str, checkpoint: Any, resource: Resource, context: Any,
              parameters: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        node, attempt = f"{resource.key}/{hook}", kwargs.get("attempt", 1)
        note(node, "start", attempt)
        out = getattr(self.inner, "on_" + hook)(checkpoint, resource, context, parameters,
                                                **kwargs)
        note(node, "end", attempt)
        return out

    def on_prepare_begin(self, checkpoint: Any, resource: Resource, context: Any,
                         parameters: dict[str, Any], **kwargs: Any) -> Any:
        return self._hook("prepare_begin", checkpoint, resource, context, parameters, kwargs)

    def on_prepare_finish(self, checkpoint: Any, resource: Resource, context: Any,
                          parameters: dict[str, Any], **kwargs: Any) -> Any:
        return self._hook("prepare_finish", checkpoint, resource, context, parameters, kwargs)

    def on_main(self, checkpoint: Any, resource: Resource, context: Any,
                parameters: dict[str, Any], **kwargs: Any) -> Any:
        return self._hook("main", checkpoint, resource, context, parameters, kwargs)

    def on_complete(self, checkpoint: Any, resource: Resource, context: Any,
                    parameters: dict[str, Any], **kwargs: Any) -> Any:
        return self._hook("complete", checkpoint, resource, context, parameters, kwargs)


class RecordingPlugin(ProtectionPlugin):
    """``inner``, with every Operation it gives recording its hooks."""

    def __init__(self, inner: ProtectionPlugin) -> None:
        self.inner = inner

    # The framework asks for each operation by the guide's name.
    def get_protect_operation(self, resource: Resource) -> Operation:
        return RecordingOperation(get_operation(self.inner, "protect", resource))

    def get_restore_operation(self, resource: Resource) -> Operation:
        return RecordingOperation(get_operation(self.inner, "restore", resource))

    def get_verify_operation(self, resource: Resource) -> Operation:
        return RecordingOperation(get_operation(self.inner, "verify", resource))

    def get_copy_operation(self, resource: Resource) -> Operation:
        return RecordingOperation(get_operation(self.inner, "copy", resource))

    def get_delete_operation(self, resource: Resource) -> Operation:
        return RecordingOperation(get_operation(self.inner, "delete", resource))

    def on_failure(self, checkpoint: Any, resource: Resource, context: Any,
                   parameters: dict[str, Any], **kwargs: Any) -> Any:
        return self.inner.on_failure(checkpoint, resource, context, parameters, **kwargs)


def registry() -> Registry:
    installed = Registry.from_entry_points()
    return Registry({name: RecordingPlugin(p) for name, p in installed.protections.items()},
                    installed.protectables.values())
