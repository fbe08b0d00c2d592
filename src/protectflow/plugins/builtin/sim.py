"""A simulated cloud: protectables and a protection plugin for seven OpenStack
resource types, so the whole system runs and can be measured with nothing to
install.

Dependencies come from the plan's ``depends_on``. Each hook sleeps for the
seconds its parameters give (``main_seconds``, ``prepare_begin_seconds``, ...;
default 0) and fails when asked to (``fail: [main]``, for the first
``fail_attempts`` attempts, or always). It stores a small object in the
checkpoint's bank section when the checkpoint has one, and restore's main hook
publishes the new id in ``new_resources`` for the parents to read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from protectflow.bank import BankSection
from protectflow.dag.model import HOOKS, Resource
from protectflow.plugins.base import (
    HookArgs,
    HookOperation,
    Operation,
    Protectable,
    ProtectionPlugin,
)

__all__ = ["SIM_TYPES", "SimFailure", "SimOperation", "SimProtectionPlugin"]

PROJECT = "OS::Keystone::Project"
SERVER = "OS::Nova::Server"
VOLUME = "OS::Cinder::Volume"
IMAGE = "OS::Glance::Image"
NETWORK = "OS::Neutron::Network"
SHARE = "OS::Manila::Share"
DATABASE = "OS::Trove::Instance"

SIM_TYPES = (PROJECT, SERVER, VOLUME, IMAGE, NETWORK, SHARE, DATABASE)


def _schema(operation: str) -> dict[str, Any]:
    seconds = {"type": "number", "minimum": 0}
    props: dict[str, Any] = {f"{h}_seconds": seconds for h in HOOKS}
    props["fail"] = {
        "type": "array",
        "items": {"enum": list(HOOKS)},
        "uniqueItems": True,
        "description": "hooks that raise SimFailure",
    }
    props["fail_attempts"] = {
        "type": "integer",
        "minimum": 1,
        "description": "fail only the first N attempts (default: every attempt)",
    }
    props["payload_bytes"] = {
        "type": "integer",
        "minimum": 0,
        "description": "bytes the protect main hook stores in the bank",
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"sim {operation} parameters",
        "type": "object",
        "additionalProperties": False,
        "properties": props,
    }


class SimFailure(RuntimeError):
    """A failure a sim hook was asked for by its parameters."""


def _protect(args: HookArgs, section: BankSection | None) -> dict[str, Any]:
    if section is not None:
        section.update_object("data", b"\0" * args.parameters.get("payload_bytes", 0))
        section.update_object("metadata", {"type": args.resource.type, "id": args.resource.id})
    return {}


def _restore(args: HookArgs, section: BankSection | None) -> dict[str, Any]:
    args.publish(f"restored-{args.resource.id}")
    return {} if section is None else {"metadata": section.get_object("metadata")}


def _delete(args: HookArgs, section: BankSection | None) -> dict[str, Any]:
    if section is not None:
        for key in section.list_objects():
            section.delete_object(key)
    return {}


#: What each operation's main hook does besides sleeping (verify and copy: nothing).
_MAIN: dict[str, Callable[[HookArgs, BankSection | None], dict[str, Any]]] = {
    "protect": _protect, "restore": _restore, "delete": _delete,
}


class SimOperation(HookOperation):
    """Every hook implemented: sleep, maybe fail, record."""

    def __init__(self, operation: str) -> None:
        super().__init__(dict.fromkeys(HOOKS, self._run))
        self.operation = operation

    def _run(self, args: HookArgs) -> dict[str, Any]:
        seconds = args.parameters.get(f"{args.hook}_seconds", 0)
        if seconds:
            time.sleep(seconds)
        attempt = args.kwargs.get("attempt", 1)
        failing = attempt <= args.parameters.get("fail_attempts", attempt)
        if args.hook in args.parameters.get("fail", ()) and failing:
            raise SimFailure(
                f"sim: {self.operation} {args.hook} of {args.resource.key} failed as its "
                f"parameters ask (attempt {attempt})"
            )
        out: dict[str, Any] = {"resource": args.resource.key, "hook": args.hook}
        main = _MAIN.get(self.operation)
        if args.hook == "main" and main is not None:
            section = (None if args.checkpoint is None
                       else args.checkpoint.get_resource_bank_section(args.resource.key))
            out.update(main(args, section))
        return out


class SimProtectionPlugin(ProtectionPlugin):
    """The simulated cloud's protection plugin, for all seven types.

    A fallback: it serves an OpenStack type only when no installed plugin
    claims it, or when a provider names it (the built-in provider ``sim``
    names it for all seven).
    """

    supported_resource_types = SIM_TYPES
    fallback: ClassVar[bool] = True

    def get_protect_operation(self, resource: Resource) -> Operation:
        return SimOperation("protect")

    def get_restore_operation(self, resource: Resource) -> Operation:
        return SimOperation("restore")

    def get_verify_operation(self, resource: Resource) -> Operation:
        return SimOperation("verify")

    def get_copy_operation(self, resource: Resource) -> Operation:
        return SimOperation("copy")

    def get_delete_operation(self, resource: Resource) -> Operation:
        return SimOperation("delete")

    @classmethod
    def get_options_schema(cls, resource_type: str) -> dict[str, Any]:
        return _schema("protect")

    @classmethod
    def get_restore_schema(cls, resource_type: str) -> dict[str, Any]:
        return _schema("restore")

    @classmethod
    def get_verify_schema(cls, resource_type: str) -> dict[str, Any]:
        return _schema("verify")

    @classmethod
    def get_saved_info_schema(cls, resource_type: str) -> dict[str, Any]:
        text = {"type": "string"}
        return {"type": "object", "properties": {"type": text, "id": text}}

    @classmethod
    def get_saved_info(cls, metadata_store: Any, resource: Resource) -> Any:
        return metadata_store.get_object("metadata")


class _SimProtectable(Protectable):
    """Dependencies of sim resources come from the plan's ``depends_on``; a
    fallback, as the sim protection plugin is.

    The simulated cloud holds, of each type, the resources ``parameters``
    names: ``ids`` (a list), else ``count`` of them (default 3) with ids
    ``<kind>-1``, ``<kind>-2``... (``server-1`` for ``OS::Nova::Server``).
    """

    fallback: ClassVar[bool] = True

    def list_resources(self, context: Any, parameters: Any = None) -> list[Resource]:
        params = parameters or {}
        if "ids" in params:
            ids = [str(i) for i in params["ids"]]
        else:
            kind = self.resource_type.rsplit("::", 1)[-1].lower()
            ids = [f"{kind}-{n}" for n in range(1, int(params.get("count", 3)) + 1)]
        return [Resource(self.resource_type, i, name=i) for i in ids]

    def show_resource(self, context: Any, resource_id: str, parameters: Any = None) -> Resource:
        return Resource(self.resource_type, resource_id, name=resource_id)


class ProjectProtectable(_SimProtectable):
    resource_type = PROJECT


class ServerProtectable(_SimProtectable):
    resource_type = SERVER
    parent_resource_types: ClassVar[tuple[str, ...]] = (PROJECT,)


class VolumeProtectable(_SimProtectable):
    resource_type = VOLUME
    parent_resource_types: ClassVar[tuple[str, ...]] = (SERVER, PROJECT)


class ImageProtectable(_SimProtectable):
    resource_type = IMAGE
    parent_resource_types: ClassVar[tuple[str, ...]] = (SERVER, PROJECT)


class NetworkProtectable(_SimProtectable):
    resource_type = NETWORK
    parent_resource_types: ClassVar[tuple[str, ...]] = (PROJECT,)


class ShareProtectable(_SimProtectable):
    resource_type = SHARE
    parent_resource_types: ClassVar[tuple[str, ...]] = (PROJECT,)


class DatabaseProtectable(_SimProtectable):
    resource_type = DATABASE
    parent_resource_types: ClassVar[tuple[str, ...]] = (PROJECT,)
