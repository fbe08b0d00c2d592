"""``protectflow protectables TYPE [ID]``: what a resource type's protectable
finds (the guide's ``list_resources``) or shows (``show_resource``), the
resources a plan may list, or name by discovery."""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml
from rich.table import Table

from protectflow.cli import results
from protectflow.cli.options import Subparsers
from protectflow.cli.output import print_json, stdout_console
from protectflow.dag.model import Resource
from protectflow.errors import PlanError, PluginError, ProtectflowError
from protectflow.plugins.queries import list_resources, show_resource

__all__ = ["add_parsers"]


def add_parsers(sub: Subparsers) -> None:
    """Add ``protectables`` to ``sub``."""
    p = sub.add_parser("protectables", help="list the resources a protectable finds, or show one")
    p.add_argument("type", metavar="TYPE", help="a resource type, e.g. protectflow::fs::Directory")
    p.add_argument("id", metavar="ID", nargs="?", help="show this resource only")
    p.add_argument("--parameters", metavar="FILE",
                   help="the protectable's parameters (a YAML or JSON object, e.g. root: /srv)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=protectables_command)


def protectables_command(args: argparse.Namespace) -> int:
    """``protectflow protectables TYPE [ID] [--parameters FILE] [--json]``."""
    parameters = _load_parameters(args.parameters)
    if args.id is None:
        found = list_resources(args.type, parameters=parameters)
    else:
        try:
            found = [show_resource(args.type, args.id, parameters=parameters)]
        except LookupError as err:
            if isinstance(err, ProtectflowError):
                raise
            # A protectable's own "no such resource", as the guide lets it say it.
            raise PluginError(f"the protectable for {args.type} has no resource "
                              f"{args.id!r}: {err}", args.type) from err
    if args.json:
        print_json(results.protectables_result(args.type, found), sort_keys=False)
        return 0
    _print(args.type, found, listing=args.id is None, parameters=parameters)
    return 0


def _print(resource_type: str, found: list[Resource], *, listing: bool,
           parameters: dict[str, Any]) -> None:
    if listing and not found:
        print(f"the protectable for {resource_type} found no resources")
        return
    table = Table(title=f"{resource_type}: {len(found)} resource(s)" if listing else None)
    for column in ("id", "name", "extra_info"):
        table.add_column(column)
    for resource in found:
        extra = ", ".join(f"{k}={v}" for k, v in sorted(resource.extra_info.items()))
        table.add_row(resource.id, resource.name, extra)
    stdout_console().print(table)
    if listing:
        body = {"type": resource_type, **({"parameters": parameters} if parameters else {})}
        # JSON is YAML: the line pastes into a plan as it is.
        print(f"a plan protects them all with the resource  - discover: {json.dumps(body)}")


def _load_parameters(path: str | None) -> dict[str, Any]:
    """The protectable's parameters in a YAML or JSON file; none without one.

    Raises
    ------
    PlanError
        When the file cannot be read or holds no mapping.
    """
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise PlanError(f"cannot read parameters {path!r}: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PlanError(f"parameters {path!r} must be a mapping of the protectable's "
                        f"parameters (e.g. root: /srv/data), not a {type(data).__name__}")
    return data
