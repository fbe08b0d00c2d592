"""``protectflow compile``, ``validate`` and ``plugins``: the commands that
look at plans and plugins and run nothing."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from protectflow.cli.options import Subparsers, load_parameters
from protectflow.cli.output import print_json, write_output
from protectflow.compiler import compile_plan, load_plan
from protectflow.dag import OPERATIONS, HookDAG, dot, jsonio, summary
from protectflow.errors import ProtectflowError
from protectflow.plugins import get_registry
from protectflow.plugins.contract import parameters_schema, supported_types
from protectflow.plugins.registry import ambiguity

__all__ = ["FORMATS", "add_parsers"]

FORMATS = ("json", "dot", "svg", "png", "text")


def add_parsers(sub: Subparsers) -> None:
    """Add ``compile``, ``validate`` and ``plugins`` to ``sub``."""
    p = sub.add_parser("compile", help="compile a plan into a hook DAG")
    p.add_argument("plan", metavar="PLAN", help="the plan file (YAML or JSON)")
    p.add_argument("--operation", default="protect", choices=OPERATIONS)
    p.add_argument("--format", default="json", choices=FORMATS)
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--prune", action="store_true", help="drop hooks the plugins do not implement")
    p.set_defaults(func=compile_command)

    p = sub.add_parser("validate", help="check a plan and its parameters, running nothing")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--operation", default="protect", choices=(*OPERATIONS, "all"))
    p.add_argument("--parameters", metavar="FILE",
                   help="parameters of the other operations (protect's are the plan's)")
    p.set_defaults(func=validate_command)

    p = sub.add_parser("plugins", help="list the installed plugins, their types and schemas")
    p.add_argument("--json", action="store_true", help="print every schema as JSON")
    p.set_defaults(func=plugins_command)


def compile_command(args: argparse.Namespace) -> int:
    """``protectflow compile PLAN``."""
    dag = compile_plan(load_plan(args.plan), args.operation, prune=args.prune)
    write_output(_render(dag, args.format), args.output)
    return 0


def _render(dag: HookDAG, fmt: str) -> str | bytes:
    if fmt == "json":
        return jsonio.dumps(dag)
    if fmt == "dot":
        return dot.to_dot(dag)
    if fmt == "text":
        return summary.summary(dag)
    return dot.render(dag, fmt)


def validate_command(args: argparse.Namespace) -> int:
    """``protectflow validate PLAN``: every error of every operation asked for,
    on stderr."""
    plan = load_plan(args.plan)
    operations = OPERATIONS if args.operation == "all" else (args.operation,)
    extra = load_parameters(args.parameters)
    failures: dict[str, list[str]] = {}  # message -> the operations it fails
    for operation in operations:
        # The plan's parameters are protect's; the others take theirs from a file.
        parameters = plan.parameters if operation == "protect" else extra
        try:
            dag = compile_plan(plan, operation, parameters=parameters)
        except ProtectflowError as err:
            failures.setdefault(str(err), []).append(operation)
    if failures:
        for message, ops in failures.items():
            print(f"{', '.join(ops)}: {message}", file=sys.stderr)
        return 2
    print(f"{args.plan}: valid for {', '.join(operations)} "
          f"({len(dag.resources)} resources, {len(dag.nodes)} hooks)")
    return 0


def plugins_command(args: argparse.Namespace) -> int:
    """``protectflow plugins``: a table, or every schema as JSON. A type
    several plugins claim with no default choice is marked, with how a plan
    chooses (a provider)."""
    registry = get_registry()
    if args.json:
        print_json({name: _describe(plugin) for name, plugin in registry.protections.items()},
                   indent=2)
        return 0
    conflicts = registry.conflicts()
    table = Table(title="protection plugins")
    for column in ("plugin", "resource type", "protectable", "protect options"):
        table.add_column(column)
    for name, plugin in registry.protections.items():
        for rtype in supported_types(plugin):
            schema = parameters_schema(plugin, "protect", rtype)
            options = ", ".join(sorted(schema.get("properties", {}))) or "(any)"
            has = "yes" if rtype in registry.protectables else "-"
            shown = f"{rtype} (!)" if rtype in conflicts else rtype
            table.add_row(name, shown, has, options)
    Console().print(table)
    for rtype, names in conflicts.items():
        print(f"(!) {ambiguity(rtype, names)}")
    print("full schemas: protectflow plugins --json")
    return 0


def _describe(plugin: Any) -> dict[str, Any]:
    """A plugin's class, resource types and the schemas of protect, restore
    and verify per type."""
    types = list(supported_types(plugin))
    return {
        "class": f"{type(plugin).__module__}.{type(plugin).__qualname__}",
        "resource_types": types,
        "schemas": {
            t: {op: parameters_schema(plugin, op, t) for op in OPERATIONS[:3]}
            for t in types
        },
    }
