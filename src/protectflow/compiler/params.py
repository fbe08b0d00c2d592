"""Parameters: merged per resource and checked against the plugins' schemas.

A resource's parameters are those of its type, overridden key by key by those
given for ``TYPE#ID``. They are validated once per distinct merged value (all
the resources of a type without overrides share one), every error at once.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import jsonschema

from protectflow.dag.resource_graph import ResourceGraph
from protectflow.errors import ParameterError, PluginError
from protectflow.plugins.contract import parameters_schema
from protectflow.plugins.registry import Registry

__all__ = ["resolve_parameters"]


def resolve_parameters(
    graph: ResourceGraph,
    plugins: Mapping[str, str],
    registry: Registry,
    operation: str,
    parameters: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Resource key -> merged parameters, for the resources that have any.

    ``plugins`` maps each resource type to its protection plugin's name; a
    type it leaves out (one with no plugin) is not checked.

    Raises
    ------
    ParameterError
        Listing every parameter set that names nothing in the graph or fails
        its plugin's schema, each with its resource.
    """
    by_type: dict[str, list[str]] = defaultdict(list)
    for key, resource in graph.resources.items():
        by_type[resource.type].append(key)
    errors = _unknown_keys(parameters, graph, by_type)
    merged: dict[str, dict[str, Any]] = {}
    for rtype, keys in sorted(by_type.items()):
        if rtype not in plugins:  # no plugin: the caller says so; the others are checked
            continue
        validator = _validator(registry, plugins[rtype], operation, rtype)  # once per type
        base = dict(parameters.get(rtype, {}))
        shared = [k for k in keys if k not in parameters]
        if shared:
            where = f"{rtype} ({len(shared)} resource{'s' * (len(shared) > 1)}: {_few(shared)})"
            errors += _check(validator, base, where, f"parameters[{rtype!r}]")
            if base:
                merged.update((k, base) for k in shared)
        for key in keys:
            if key in parameters:
                value = {**base, **parameters[key]}
                errors += _check(validator, value, key, f"parameters[{key!r}]")
                if value:
                    merged[key] = value
    if errors:
        raise ParameterError(f"the {operation} parameters are not valid:", errors)
    return merged


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")


def _unknown_keys(
    parameters: Mapping[str, Any], graph: ResourceGraph, by_type: Mapping[str, list[str]]
) -> list[str]:
    errors = []
    known = list(by_type) + list(graph.resources)
    for name in parameters:
        if name in by_type or name in graph.resources:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        errors.append(
            f"parameters[{name!r}] names no resource type or resource of the plan{hint}"
        )
    return errors


def _check(validator: Any, value: dict[str, Any], where: str, origin: str) -> list[str]:
    out = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        path = "".join(f".{p}" for p in error.absolute_path)
        out.append(f"{where}: {origin}{path}: {_message(error)}")
    return out


def _message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message, with the known options for an unknown one."""
    if error.validator != "additionalProperties" or not isinstance(error.instance, Mapping):
        return str(error.message)
    known = sorted(error.schema.get("properties", {}))
    parts = []
    for name in sorted(set(error.instance) - set(known)):
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known) or 'none'}"
        parts.append(f"unknown parameter {name!r}; {hint}")
    return "; ".join(parts) or str(error.message)


def _validator(registry: Registry, plugin: str, operation: str, rtype: str) -> Any:
    schema = parameters_schema(registry.plugin(plugin), operation, rtype)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as err:
        raise PluginError(
            f"plugin {plugin!r} gives an invalid {operation} schema for {rtype}: {err.message}",
            plugin,
        ) from err
    return cls(schema)
