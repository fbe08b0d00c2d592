"""A protection plugin written to the guide alone: plain classes, no
protectflow base class, no ``retries``/``timeout`` on its Operations, hooks
declaring their arguments in orders of their own.

Each hook returns what it was given, by name, so a test can check that every
value went to the right parameter whatever the executor (the registry is
``tests.executors.plain_plugins:registry``, importable on dask workers).
"""

from __future__ import annotations

import os
from typing import Any

from protectflow.dag.model import Resource
from protectflow.plugins import Registry

SPEC = "tests.executors.plain_plugins:registry"
TYPE = "Test::Plain"
RECORDERS = {"restore": "restore", "verify": "verify", "copy": "checkpoint_copy"}


def _seen(hook: str, checkpoint: Any, resource: Resource, context: Any,
          parameters: dict[str, Any], extras: dict[str, Any]) -> dict[str, Any]:
    recorder = None
    for name in ("restore", "verify", "checkpoint_copy"):
        if extras.get(name) is not None:
            recorder = name
            # Karbor's call: the status of the resource this hook handles.
            extras[name].update_resource_status(resource.type, resource.id, f"{hook}-done",
                                                f"{hook} ran")
    return {"hook": hook, "checkpoint": checkpoint, "resource": resource.key,
            "context": context, "parameters": dict(parameters),
            "extras": sorted(k for k, v in extras.items() if v is not None),
            "recorder": recorder, "attempt": extras.get("attempt"),
            "new_resources": None if extras.get("new_resources") is None
            else dict(extras["new_resources"]),
            "pid": os.getpid()}


class PlainOperation:
    """Hooks taking their arguments in four different orders and ways."""

    def __init__(self) -> None:
        self.hooks: list[str] = []

    def on_prepare_begin(self, parameters: dict[str, Any], context: Any, resource: Resource,
                         checkpoint: Any, **kwargs: Any) -> dict[str, Any]:
        self.hooks.append("prepare_begin")
        return _seen("prepare_begin", checkpoint, resource, context, parameters, kwargs)

    def on_prepare_finish(self, resource: Resource, checkpoint: Any, parameters: dict[str, Any],
                          context: Any, *, attempt: int = 0, restore: Any = None,
                          verify: Any = None, checkpoint_copy: Any = None) -> dict[str, Any]:
        self.hooks.append("prepare_finish")
        extras = {"attempt": attempt, "restore": restore, "verify": verify,
                  "checkpoint_copy": checkpoint_copy}
        return _seen("prepare_finish", checkpoint, resource, context, parameters, extras)

    def on_main(self, context: Any, *, checkpoint: Any, parameters: dict[str, Any],
                resource: Resource, **kwargs: Any) -> dict[str, Any]:
        self.hooks.append("main")
        return _seen("main", checkpoint, resource, context, parameters, kwargs)

    def on_complete(self, checkpoint: Any, resource: Resource, context: Any,
                    parameters: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.hooks.append("complete")
        out = _seen("complete", checkpoint, resource, context, parameters, kwargs)
        out["on_self"] = list(self.hooks)
        return out


class PlainPlugin:
    """The guide's methods, and nothing else."""

    def get_supported_resources_types(self) -> list[str]:
        return [TYPE]

    def get_options_schema(self, resource_type: str) -> dict[str, Any]:
        return {"type": "object"}

    def get_restore_schema(self, resource_type: str) -> dict[str, Any]:
        return {"type": "object"}

    def get_saved_info_schema(self, resource_type: str) -> dict[str, Any]:
        return {"type": "object"}

    def get_saved_info(self, metadata_store: Any, resource: Resource) -> Any:
        return None

    def get_protect_operation(self, resource: Resource) -> PlainOperation:
        return PlainOperation()

    def get_restore_operation(self, resource: Resource) -> PlainOperation:
        return PlainOperation()

    def get_verify_operation(self, resource: Resource) -> PlainOperation:
        return PlainOperation()

    def get_copy_operation(self, resource: Resource) -> PlainOperation:
        return PlainOperation()

    def get_delete_operation(self, resource: Resource) -> PlainOperation:
        return PlainOperation()


def registry() -> Registry:
    return Registry({"plain": PlainPlugin()})
