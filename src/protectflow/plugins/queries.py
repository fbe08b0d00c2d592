"""The guide's read-only methods as library calls: a checkpoint's saved info
of one resource (``get_saved_info``, checked against
``get_saved_info_schema``), and what a protectable finds
(``list_resources``, ``show_resource``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import jsonschema

from protectflow.dag.model import Resource
from protectflow.errors import BankError, PluginError
from protectflow.plugins.providers import resolve_provider
from protectflow.plugins.registry import Registry, get_registry

if TYPE_CHECKING:  # the bank is the caller's: reading a plugin's schema loads none
    from protectflow.bank import Checkpoint

__all__ = ["SavedInfo", "list_resources", "plugin_of", "resource_of", "saved_info", "show_resource"]


@attrs.frozen
class SavedInfo:
    """What a checkpoint keeps about one resource, as its plugin describes it."""

    resource: Resource
    plugin: str
    info: Any
    schema: dict[str, Any] = attrs.field(hash=False)

    def to_json(self) -> dict[str, Any]:
        return {"resource": self.resource.key, "plugin": self.plugin, "info": self.info}


def saved_info(checkpoint: Checkpoint, resource: str | Resource, *,
               registry: Registry | None = None) -> SavedInfo:
    """The saved info of ``resource`` (a Resource or its ``TYPE#ID`` key) in
    ``checkpoint``, from the plugin that serves it.

    The plugin is the one the checkpoint's plan's provider chooses for the
    resource's type, as it is for a restore or verify of the checkpoint. Its
    ``get_saved_info(metadata_store, resource)`` gets the resource's bank
    section, read-only; the answer is checked against its
    ``get_saved_info_schema(resource_type)``.

    Raises
    ------
    BankError
        When the checkpoint has no such resource (close keys are suggested),
        or its plugin cannot read the saved info (a protect that did not
        finish).
    PluginError
        When the plugin is not installed, or its answer breaks its own schema
        (every error listed).
    """
    registry = registry or get_registry()
    found = resource_of(checkpoint, resource)
    name = plugin_of(checkpoint, found, registry)
    plugin = registry.plugin(name)
    getter = getattr(plugin, "get_saved_info", None)
    schema_getter = getattr(plugin, "get_saved_info_schema", None)
    schema: dict[str, Any] = (schema_getter(found.type) if schema_getter is not None
                              else {"type": "object"})
    if getter is None:
        return SavedInfo(found, name, None, schema)
    section = checkpoint.get_resource_bank_section(found, read_only=True)
    try:
        info = getter(section, found)
    except BankError as err:
        raise BankError(f"{found.key} in checkpoint {checkpoint.id}: plugin {name!r} cannot "
                        f"read its saved info: {err}") from err
    _check(info, schema, name, found)
    return SavedInfo(found, name, info, schema)


def resource_of(checkpoint: Checkpoint, resource: str | Resource) -> Resource:
    key = resource.key if isinstance(resource, Resource) else resource
    known = checkpoint.resource_graph.resources
    if key not in known:
        close = difflib.get_close_matches(key, list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else (
            f"; it holds {', '.join(sorted(known)[:10]) or 'none'}")
        raise BankError(f"checkpoint {checkpoint.id} holds no resource {key}{hint}")
    return known[key]


def plugin_of(checkpoint: Checkpoint, resource: Resource, registry: Registry) -> str:
    provider = resolve_provider(checkpoint.plan.provider, registry)
    name = provider.plugin_for(resource.type, registry)
    if name is None:
        raise PluginError(f"no installed protection plugin handles {resource.type}, so the "
                          f"saved info of {resource.key} cannot be read")
    return name


def _check(info: Any, schema: dict[str, Any], plugin: str, resource: Resource) -> None:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    errors = sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
        for e in cls(schema).iter_errors(info))
    if errors:
        raise PluginError(f"plugin {plugin!r} returned saved info for {resource.key} that "
                          "breaks its own get_saved_info_schema: " + "; ".join(errors), plugin)


def _protectable(resource_type: str, registry: Registry | None) -> Any:
    registry = registry or get_registry()
    protectable = registry.protectable_for(resource_type)
    if protectable is None:
        close = difflib.get_close_matches(resource_type, list(registry.protectables), n=1)
        hint = f"did you mean {close[0]!r}?" if close else (
            f"protectables: {', '.join(sorted(registry.protectables)) or 'none'}")
        raise PluginError(f"no protectable for resource type {resource_type!r}; {hint}",
                          resource_type)
    return protectable


def list_resources(resource_type: str, *, context: Any = None,
                   parameters: Mapping[str, Any] | None = None,
                   registry: Registry | None = None) -> list[Resource]:
    """Every resource of ``resource_type`` its protectable finds, sorted by key.

    Raises
    ------
    PluginError
        When no protectable handles the type, or it lists something that is
        not a resource of that type.
    """
    protectable = _protectable(resource_type, registry)
    found = list(protectable.list_resources(context, dict(parameters or {})))
    for item in found:
        if not isinstance(item, Resource) or item.type != resource_type:
            raise PluginError(f"the protectable for {resource_type} listed {item!r}, not a "
                              f"resource of that type", type(protectable).__qualname__)
    return sorted(found, key=lambda r: r.key)


def show_resource(resource_type: str, resource_id: str, *, context: Any = None,
                  parameters: Mapping[str, Any] | None = None,
                  registry: Registry | None = None) -> Resource:
    """The resource ``resource_type#resource_id`` as its protectable shows it.

    Raises
    ------
    PluginError
        When no protectable handles the type, or it answers with another
        resource.
    LookupError
        What the protectable raises for a resource it does not have.
    """
    protectable = _protectable(resource_type, registry)
    found = protectable.show_resource(context, resource_id, dict(parameters or {}))
    if not isinstance(found, Resource) or found.key != f"{resource_type}#{resource_id}":
        raise PluginError(f"the protectable for {resource_type} showed {found!r} when asked "
                          f"for {resource_type}#{resource_id}", type(protectable).__qualname__)
    return found
